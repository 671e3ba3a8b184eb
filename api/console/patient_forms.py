"""The patient's marketing authorisation form, and the plain words the patient's pages
use for the codes in their records.

The form's text is rendered from the recipient and the end date the patient chose,
by one function, both for the page that shows it and for the grant that records it:
the evidence's ``text_sha256`` is the SHA-256 of exactly those UTF-8 bytes. The text
holds no character that HTML escapes (checked here), so the bytes between the page's
``<pre>`` tags are the bytes hashed.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain.errors import InvalidValue
from domain.grantee import ORGANISATION_ID, Grantee, GranteeKind

FORM_ID = "careledger-marketing-authorisation"
FORM_VERSION = "1"
LONGEST = timedelta(days=3 * 366)  # an authorisation ends; three years at most

_TEXT = """\
Authorisation to use my health information for marketing

I, the patient whose record this is, allow CareLedger to disclose my health
information to the organisation {recipient} for marketing: to send me
information about products or services.

What it covers: the demographics and the clinical entries in my record. It does
not cover entries marked as sensitive (substance use treatment, mental health,
sexual health and genetic information).

When: from {start} until the end of {last_day}, unless I revoke it sooner.

My rights:
- I do not have to sign this. My care, payment, enrolment and eligibility for
  benefits do not depend on whether I sign it.
- I can revoke it at any time on the My consents page. A revocation stops
  future disclosures; it cannot undo a disclosure already made.
- Once disclosed, my information may be disclosed again by the recipient and
  may no longer be protected by federal privacy rules.
- Every disclosure made under this authorisation is recorded, and I can see it
  on the Who viewed my record page.

Form {form_id}, version {form_version}.
I sign it electronically by choosing Sign and grant.
"""


@dataclass(frozen=True)
class MarketingAuthorisation:
    recipient: str  # an organisation id
    start: date
    end: date  # the first day it no longer applies

    @property
    def grantee(self) -> str:
        return str(Grantee(GranteeKind.ORGANISATION, self.recipient))

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def text(self) -> str:
        text = _TEXT.format(
            recipient=self.recipient,
            start=self.start.isoformat(),
            last_day=self.last_day.isoformat(),
            form_id=FORM_ID,
            form_version=FORM_VERSION,
        )
        if re.search(r"[&<>\"']", text):  # would be escaped: the page would differ
            raise InvalidValue("recipient", "must be an organisation id")
        return text

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def marketing_form(form: dict[str, str], today: date) -> MarketingAuthorisation:
    """The authorisation the patient's choices describe (InvalidValue for bad input)."""
    recipient = form.get("recipient", "").strip()
    if recipient.startswith("org:"):
        recipient = recipient[4:]
    if not ORGANISATION_ID.match(recipient):
        raise InvalidValue(
            "recipient", "must be an organisation id (letters, digits, '.', '_', ':' or '-')"
        )
    try:
        last_day = date.fromisoformat(form.get("until", "").strip())
    except ValueError:
        raise InvalidValue("until", "must be a date such as 2027-12-31") from None
    if last_day < today:
        raise InvalidValue("until", "must be today or later")
    end = last_day + timedelta(days=1)
    if end - today > LONGEST:
        raise InvalidValue("until", "must be at most three years from today")
    return MarketingAuthorisation(recipient, today, end)


PURPOSES = {
    "TREAT": "your care (treatment)",
    "ETREAT": "emergency care (break-glass)",
    "HPAYMT": "payment for your care",
    "HOPERAT": "running the practice (operations)",
    "HMARKT": "marketing",
    "HRESCH": "research",
    "PATRQT": "your own request",
    "PUBHLTH": "public-health reporting required by law",
}
ACTIONS = {
    "read": "looked at your record",
    "search": "found you in a search",
    "write": "changed your record",
    "replay": "re-checked an earlier access (audit)",
    "export": "exported your record",
    "deliver": "received your record (delivery)",
}
LABELS = {
    "substance_use": "substance use treatment",
    "mental_health": "mental health",
    "sexual_health": "sexual health",
    "genetic": "genetic information",
}
ROLES = {
    "clinician": "clinician",
    "patient": "you",
    "auditor": "privacy auditor",
    "admin": "administrator",
    "service": "connected system",
}


def grantee_words(text: str) -> str:
    """Who a directive names, in words."""
    grantee = Grantee.read(text)
    if grantee is None:
        return text
    if grantee.kind is GranteeKind.PRACTITIONER:
        return f"{grantee.subject}, of the organisation {grantee.org}"
    if grantee.kind is GranteeKind.SUBSCRIBER:
        return f"a connected system ({grantee.subject})"
    return f"the organisation {grantee.org}"


def words(kind: dict[str, str], code: Any) -> str:
    return kind.get(str(code), str(code))


def in_words(kind: dict[str, str], codes: list[str]) -> str:
    """Codes as a plain list: "your care (treatment) and marketing"."""
    said = [words(kind, code) for code in codes]
    return " and ".join([", ".join(said[:-1]), said[-1]] if len(said) > 1 else said)


def directive_view(directive: dict[str, Any], today: str) -> dict[str, Any]:
    """A directive of the consents body, with its codes in words."""
    period = directive["period"]
    return {
        **directive,
        "who": grantee_words(directive["grantee"]),
        "for_what": in_words(PURPOSES, directive["purposes"]),
        "sensitive": in_words(LABELS, directive["labels"]) if directive["labels"] else "none",
        "last_day": (date.fromisoformat(period["end"]) - timedelta(days=1)).isoformat()
        if period["end"]
        else None,
        # Revocable: in force, or granted for a period yet to start.
        "upcoming": directive["status"] == "inactive"
        and directive["revoked_at"] is None
        and period["start"] > today,
    }


def restriction_view(restriction: dict[str, Any]) -> dict[str, Any]:
    return {
        **restriction,
        "for_what": in_words(PURPOSES, restriction["purposes"]),
        "sensitive": in_words(LABELS, restriction["labels"]) if restriction["labels"] else "",
    }
