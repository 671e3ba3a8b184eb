"""Application errors. The API maps each to one problem+json status, in one place."""


class ApplicationError(Exception):
    """Base class. Messages are safe to show: no PHI, no secrets."""


class NotFound(ApplicationError):
    """The resource does not exist, or the actor may not know that it does."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} not found")
        self.resource = resource


class Gone(ApplicationError):
    """The patient was erased; their data can no longer be read."""


class Forbidden(ApplicationError):
    """A valid actor who is not allowed to do this. Every one is audited as a denial."""

    recorded = False  # set once its access record (decision deny) has been written


class VersionConflict(ApplicationError):
    """Someone else changed the stream first, and retrying did not help."""

    def __init__(self) -> None:
        super().__init__("the record changed concurrently; reload and retry")


class PreconditionFailed(ApplicationError):
    """An If-Match expected version that is not the current one."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, but the current version is {actual}")
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(ApplicationError):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class Unsupported(ApplicationError):
    """A request this server understands but cannot honour as asked (400): refused,
    never ignored, so that a client never takes a wider answer for a narrower one."""


class TooManyRequests(ApplicationError):
    """A bounded resource (running bulk exports) is in use; retry later (429)."""


class StoreUnavailable(ApplicationError):
    """The event store cannot be reached."""


class WriteNotCommitted(StoreUnavailable):
    """The store did not take the write in time, and it never will (503)."""

    def __init__(self) -> None:
        super().__init__(
            "the event store did not take the write in time; it was not committed: retry it"
        )


class WriteOutcomeUnknown(StoreUnavailable):
    """The write's commit did not return: it may have committed (503, and says so)."""

    def __init__(self) -> None:
        super().__init__(
            "the event store did not confirm the write; it may have been committed: "
            "retry it with the same Idempotency-Key, which answers with the original result"
        )


class StoreFull(StoreUnavailable):
    """The disk under the store is full: the write was rolled back, not committed (507)."""

    def __init__(self) -> None:
        super().__init__(
            "the event store's disk is full; the write was not committed: retry it once "
            "the operator has freed space"
        )


class AuditUnavailable(StoreUnavailable):
    """An access record could not be made durable: nothing is disclosed (503)."""

    def __init__(self) -> None:
        super().__init__("the access record could not be written; nothing was disclosed")


class DataKeyDestroyed(Gone):
    """The stream belongs to a crypto-shredded patient: its key no longer exists."""

    def __init__(self) -> None:
        super().__init__("the patient's record has been erased")


class IntegrityViolation(ApplicationError):
    """A stored record failed authentication: it was altered, moved or forged.

    The message names the stream and version only, which are random ids, never PHI.
    """
