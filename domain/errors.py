"""Domain errors: a command broke an invariant of the clinic's model."""


class DomainError(Exception):
    """Base class. The message is safe to show: it never contains PHI."""


class InvalidValue(DomainError):
    """A value is outside its vocabulary or its allowed range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PatientDeceased(DomainError):
    def __init__(self) -> None:
        super().__init__("the patient is recorded as deceased; the chart is closed")


class PatientErased(DomainError):
    def __init__(self) -> None:
        super().__init__("the patient has been erased")


class EntryNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("no such entry in this chart")


class EntryEnteredInError(DomainError):
    def __init__(self) -> None:
        super().__init__("the entry is marked entered in error and cannot change")


class MembershipNotActive(DomainError):
    def __init__(self, status: str) -> None:
        super().__init__(f"the membership is {status}, not active")
        self.status = status


class MembershipPeriodInvalid(DomainError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class DirectiveNotFound(DomainError):
    def __init__(self) -> None:
        super().__init__("no such directive in this consent record")


class DirectiveNotActive(DomainError):
    def __init__(self) -> None:
        super().__init__("the directive is not active (revoked or outside its period)")


class SponsorProgrammeDiscontinued(DomainError):
    def __init__(self) -> None:
        super().__init__("the sponsor's programme has been discontinued")


class AlreadyReviewed(DomainError):
    def __init__(self) -> None:
        super().__init__("the access has been reviewed; a review is never replaced")


class OwnAccessReview(DomainError):
    def __init__(self) -> None:
        super().__init__("nobody reviews their own access")
