"""Who a consent directive names: an organisation, a practitioner of one, or a subscriber.

A grantee is a typed, qualified reference, never a role name and never a bare subject:
two practitioners with the same subject in different organisations are different
people. Its text forms are

- ``org:<org-id>``;
- ``practitioner:<org-id>/<subject>``;
- ``subscriber:<subscriber-id>``;
- a bare string, read as an organisation id. Directives granted before grantees were
  typed hold bare strings; reading one as an organisation is the only reading that
  can never admit more than it named (``dr-grey`` or ``clinician`` name no
  organisation, so they admit nobody).
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from domain.errors import InvalidValue

ORGANISATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
SUBJECT = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable, no blanks


class GranteeKind(StrEnum):
    ORGANISATION = "org"
    PRACTITIONER = "practitioner"
    SUBSCRIBER = "subscriber"


@dataclass(frozen=True)
class Grantee:
    kind: GranteeKind
    org: str = ""  # the organisation, for organisations and practitioners
    subject: str = ""  # the practitioner's subject, or the subscriber's id

    @staticmethod
    def parse(text: str) -> "Grantee":
        """The reference a grantee text names; ``InvalidValue`` if it names none."""
        text = text.strip()
        prefix, colon, rest = text.partition(":")
        if colon and prefix == GranteeKind.PRACTITIONER:
            org, slash, subject = rest.partition("/")
            if slash and ORGANISATION_ID.match(org) and SUBJECT.match(subject):
                return Grantee(GranteeKind.PRACTITIONER, org, subject)
        elif colon and prefix == GranteeKind.SUBSCRIBER:
            try:
                return Grantee(GranteeKind.SUBSCRIBER, subject=str(UUID(rest)))
            except ValueError:
                pass
        elif colon and prefix == GranteeKind.ORGANISATION:
            if ORGANISATION_ID.match(rest):
                return Grantee(GranteeKind.ORGANISATION, rest)
        elif ORGANISATION_ID.match(text):
            return Grantee(GranteeKind.ORGANISATION, text)
        raise InvalidValue(
            "grantee",
            "must be org:<org-id>, practitioner:<org-id>/<sub>, subscriber:<id> "
            "or an organisation id",
        )

    @staticmethod
    def read(text: str) -> "Grantee | None":
        """A stored grantee, or None for a legacy text that names nobody."""
        try:
            return Grantee.parse(text)
        except InvalidValue:
            return None

    def __str__(self) -> str:
        if self.kind is GranteeKind.PRACTITIONER:
            return f"{self.kind}:{self.org}/{self.subject}"
        if self.kind is GranteeKind.SUBSCRIBER:
            return f"{self.kind}:{self.subject}"
        return f"{self.kind}:{self.org}"

    def names_organisation(self, org: str) -> bool:
        """Whether this grantee is, or belongs to, that organisation."""
        return self.kind is not GranteeKind.SUBSCRIBER and self.org == org
