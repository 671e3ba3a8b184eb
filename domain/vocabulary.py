"""Closed vocabularies of the clinic. Anything outside them is a domain error."""

from enum import StrEnum


class EntryKind(StrEnum):
    ENCOUNTER = "encounter"
    OBSERVATION = "observation"
    CONDITION = "condition"
    ALLERGY = "allergy"
    MEDICATION = "medication"
    IMMUNIZATION = "immunization"
    PROCEDURE = "procedure"
    LAB_RESULT = "lab_result"
    NOTE = "note"


class SensitivityLabel(StrEnum):
    """Labels that hide an entry unless a consent directive allows it."""

    SUBSTANCE_USE = "substance_use"  # 42 CFR Part 2
    MENTAL_HEALTH = "mental_health"
    SEXUAL_HEALTH = "sexual_health"
    GENETIC = "genetic"


class Modality(StrEnum):
    """How an encounter was delivered."""

    VIRTUAL = "virtual"
    IN_OFFICE = "in_office"
    HOME = "home"


class Purpose(StrEnum):
    """HL7 v3 ActReason purpose-of-use codes."""

    TREAT = "TREAT"
    ETREAT = "ETREAT"
    HPAYMT = "HPAYMT"
    HOPERAT = "HOPERAT"
    HMARKT = "HMARKT"
    HRESCH = "HRESCH"
    PATRQT = "PATRQT"
    PUBHLTH = "PUBHLTH"


class AdministrativeSex(StrEnum):
    """FHIR AdministrativeGender."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Plan(StrEnum):
    INDIVIDUAL = "individual"
    EMPLOYER = "employer"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    LAPSED = "lapsed"  # never stored: read from an active membership's past ends_on
    TERMINATED = "terminated"


class TerminationReason(StrEnum):
    SPONSOR_PROGRAM_ENDED = "sponsor_program_ended"
    SERVICE_DISCONTINUED = "service_discontinued"
    NON_PAYMENT = "non_payment"
    CONDUCT = "conduct"


class SigningMethod(StrEnum):
    """How the patient signed a consent form."""

    ELECTRONIC = "electronic"
    WET_INK = "wet_ink"
    VERBAL_WITNESSED = "verbal_witnessed"


class EntryStatus(StrEnum):
    ACTIVE = "active"
    AMENDED = "amended"
    ENTERED_IN_ERROR = "entered_in_error"
