"""Synthetic demo data: realistic codes, all visit modalities, sponsors and consents."""

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.container import Container
from application.context import Actor, RequestContext, Role
from domain.identifiers import MrnInUse
from domain.values import (
    CodedValue,
    Coding,
    ContactDetails,
    EntryValue,
    HumanName,
    Period,
    Quantity,
    TextValue,
)
from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    Modality,
    Plan,
    Purpose,
    SensitivityLabel,
    SigningMethod,
)

LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
RXNORM, CVX = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://hl7.org/fhir/sid/cvx"

GIVEN = [
    "Ada",
    "Grace",
    "Alan",
    "Mary",
    "Omar",
    "Lena",
    "Kwame",
    "Sofia",
    "Hiro",
    "Priya",
    "Mateo",
    "Amara",
    "Jonas",
    "Mei",
    "Tomasz",
    "Fatima",
    "Diego",
    "Ingrid",
    "Ravi",
    "Chloe",
]
FAMILY = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Seacole",
    "Haddad",
    "Novak",
    "Mensah",
    "Rossi",
    "Tanaka",
    "Okafor",
    "Lindqvist",
    "Garcia",
    "Kowalski",
    "Chen",
    "Patel",
    "Dubois",
]
BORN_FROM = date(1940, 1, 1)
BIRTH_SPAN_DAYS = (date(2020, 12, 31) - BORN_FROM).days
SEX_WEIGHTS = {
    AdministrativeSex.FEMALE: 48,
    AdministrativeSex.MALE: 48,
    AdministrativeSex.OTHER: 2,
    AdministrativeSex.UNKNOWN: 2,
}
INDIVIDUAL_FEE_CENTS = 19900
SPONSOR_FEES_CENTS = {"acme-corp": 15900, "globex": 14900, "initech": 17900, "umbrella": 12900}

ENCOUNTERS = {
    Modality.VIRTUAL: Coding(SNOMED, "185317003", "Telephone encounter"),
    Modality.IN_OFFICE: Coding(SNOMED, "308335008", "Patient encounter procedure"),
    Modality.HOME: Coding(SNOMED, "439708006", "Home visit"),
}
# (kind, LOINC code, display, low, high, decimal places, UCUM unit)
MEASUREMENTS = [
    (EntryKind.OBSERVATION, "8867-4", "Heart rate", 55, 110, 0, "/min"),
    (EntryKind.OBSERVATION, "8480-6", "Systolic blood pressure", 100, 165, 0, "mm[Hg]"),
    (EntryKind.OBSERVATION, "8462-4", "Diastolic blood pressure", 60, 100, 0, "mm[Hg]"),
    (EntryKind.OBSERVATION, "29463-7", "Body weight", 45, 120, 1, "kg"),
    (EntryKind.OBSERVATION, "8310-5", "Body temperature", 36.1, 38.4, 1, "Cel"),
    (EntryKind.LAB_RESULT, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", 4.8, 11, 1, "%"),
    (EntryKind.LAB_RESULT, "2339-0", "Glucose [Mass/volume] in Blood", 70, 220, 0, "mg/dL"),
    (EntryKind.LAB_RESULT, "2093-3", "Cholesterol [Mass/volume] in Serum", 140, 280, 0, "mg/dL"),
]
# A chronic problem and the medication that usually comes with it.
PROBLEMS = [
    (
        Coding(SNOMED, "44054006", "Type 2 diabetes mellitus"),
        Coding(RXNORM, "860975", "metformin hydrochloride 500 MG Oral Tablet"),
    ),
    (
        Coding(SNOMED, "38341003", "Hypertensive disorder"),
        Coding(RXNORM, "197361", "amlodipine 5 MG Oral Tablet"),
    ),
    (
        Coding(SNOMED, "195967001", "Asthma"),
        Coding(RXNORM, "745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ),
]
IMMUNIZATIONS = [
    Coding(CVX, "140", "Influenza, seasonal, injectable, preservative free"),
    Coding(CVX, "208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose"),
]
PENICILLIN_ALLERGY = Coding(SNOMED, "91936005", "Allergy to penicillin")
REACTIONS = [
    Coding(SNOMED, "271807003", "Eruption of skin"),
    Coding(SNOMED, "39579001", "Anaphylaxis"),
]
SENSITIVE = [
    (Coding(SNOMED, "66214007", "Substance abuse"), SensitivityLabel.SUBSTANCE_USE),
    (Coding(SNOMED, "35489007", "Depressive disorder"), SensitivityLabel.MENTAL_HEALTH),
]
PROGRESS_NOTE = Coding(LOINC, "11506-3", "Progress note")
NOTES = [
    "Feels well. Tolerating medication. Continue current plan, review in 3 months.",
    "Reports poor sleep for two weeks. Sleep hygiene discussed; follow up in 4 weeks.",
    "Home readings reviewed with patient; lifestyle advice given on diet and exercise.",
    "Annual review. No new concerns. Vaccinations up to date per patient.",
]
CONSENT_GRANTEE = "org-pharmacy"
CONSENT_LABELS: list[frozenset[SensitivityLabel]] = [
    frozenset(),
    frozenset({SensitivityLabel.SUBSTANCE_USE}),
    frozenset({SensitivityLabel.MENTAL_HEALTH}),
]
CONSENT_FORM_TEXT = (
    "I authorise CareLedger to disclose my health records to my pharmacy for the purpose "
    "of my treatment. I may revoke this consent at any time, in writing."
)


@dataclass(frozen=True)
class Entry:
    kind: EntryKind
    code: Coding
    value: EntryValue | None = None
    modality: Modality | None = None
    labels: frozenset[SensitivityLabel] = field(default_factory=frozenset)


def seed_demo(container: Container, *, patients: int, seed: int) -> str:
    """Seed ``patients`` demo patients, numbered from 0; one whose MRN is registered
    already is left as it is, so running the demo again seeds only what is missing."""
    org = container.settings.org
    clinician = _context(Actor("demo-clinician", Role.CLINICIAN, org), seed)
    admin = _context(Actor("demo-admin", Role.ADMIN, org), seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    today = now.date()
    form_sha256 = hashlib.sha256(CONSENT_FORM_TEXT.encode()).hexdigest()
    entries = directives = seeded = 0
    sponsors: set[str] = set()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("Seeding demo patients", total=patients)
        for number in range(patients):
            # One generator per patient, so that a patient's data does not depend on
            # which of the others a run skipped.
            rng = random.Random(f"{seed}/{number}")  # noqa: S311 - synthetic, not a secret
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            try:
                outcome = container.patients.register(
                    clinician,
                    mrn=f"DEMO-{number:06d}",
                    name=HumanName(given, family),
                    birth_date=BORN_FROM + timedelta(days=rng.randint(0, BIRTH_SPAN_DAYS)),
                    sex=rng.choices(list(SEX_WEIGHTS), weights=list(SEX_WEIGHTS.values()))[0],
                    contact=ContactDetails(
                        phone=f"+1-555-01{rng.randint(0, 99):02d}",
                        email=f"{given}.{family}@example.org".lower(),
                    ),
                )
            except MrnInUse:
                progress.advance(task)
                continue
            seeded += 1
            patient_id = UUID(outcome.result["id"])
            # Cycling the first visit's modality guarantees every modality in any run of 3+.
            first_visit = list(Modality)[number % len(Modality)]
            for entry in _chart(rng, first_visit):
                container.patients.record_entry(
                    clinician,
                    patient_id,
                    kind=entry.kind,
                    code=entry.code,
                    value=entry.value,
                    effective_at=now - timedelta(minutes=rng.randint(60, 2 * 365 * 24 * 60)),
                    modality=entry.modality,
                    labels=entry.labels,
                )
                entries += 1
            sponsor = rng.choice(list(SPONSOR_FEES_CENTS)) if rng.random() < 0.5 else None
            starts_on = today - timedelta(days=rng.randint(0, 364))
            container.memberships.enrol(
                admin,
                patient_id=patient_id,
                plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
                sponsor_id=sponsor,
                annual_fee_cents=SPONSOR_FEES_CENTS[sponsor] if sponsor else INDIVIDUAL_FEE_CENTS,
                starts_on=starts_on,
                ends_on=_a_year_on(starts_on),
            )
            if sponsor:
                sponsors.add(sponsor)
            if rng.random() < 1 / 3:
                # The patient signs the form themselves, so the evidence names them.
                patient = _context(Actor(str(patient_id), Role.PATIENT, org, patient_id), seed)
                container.consents.grant_directive(
                    patient,
                    patient_id,
                    grantee=CONSENT_GRANTEE,
                    purposes=frozenset({Purpose.TREAT}),
                    labels=rng.choice(CONSENT_LABELS),
                    period=Period(today, _a_year_on(today)),
                    form_id="consent-general",
                    form_version="2",
                    text_sha256=form_sha256,
                    method=SigningMethod.ELECTRONIC,
                )
                directives += 1
            progress.advance(task)
    container.catch_up()  # so the read models show the demo even with no worker running
    if seeded == 0:
        last = f"DEMO-{patients - 1:06d}"
        return f"the demo data is already there (DEMO-000000 to {last}); nothing seeded"
    summary = (
        f"seeded {seeded} patients, {entries} entries, {seeded} memberships "
        f"({len(sponsors)} sponsors), {directives} consent directives"
    )
    if seeded < patients:
        summary += f"; {patients - seeded} demo patients were there already"
    return summary


def _chart(rng: random.Random, first_visit: Modality) -> list[Entry]:
    """5 to 15 entries: a visit, the patient's problems and medications, then a mix."""
    chart = [Entry(EntryKind.ENCOUNTER, ENCOUNTERS[first_visit], modality=first_visit)]
    for condition, medication in rng.sample(PROBLEMS, rng.choice([0, 1, 1, 2])):
        chart += [Entry(EntryKind.CONDITION, condition), Entry(EntryKind.MEDICATION, medication)]
    if rng.random() < 0.15:
        reaction = CodedValue(rng.choice(REACTIONS))
        chart.append(Entry(EntryKind.ALLERGY, PENICILLIN_ALLERGY, reaction))
    if rng.random() < 0.25:
        code, label = rng.choice(SENSITIVE)
        chart.append(Entry(EntryKind.CONDITION, code, labels=frozenset({label})))
    for _ in range(rng.randint(5, 15) - len(chart)):
        roll = rng.random()
        if roll < 0.25:
            modality = rng.choice(list(Modality))
            chart.append(Entry(EntryKind.ENCOUNTER, ENCOUNTERS[modality], modality=modality))
        elif roll < 0.75:
            kind, loinc, display, low, high, places, unit = rng.choice(MEASUREMENTS)
            scale = 10**places
            amount = Decimal(rng.randint(round(low * scale), round(high * scale))).scaleb(-places)
            chart.append(Entry(kind, Coding(LOINC, loinc, display), Quantity(amount, unit)))
        elif roll < 0.9:
            chart.append(Entry(EntryKind.IMMUNIZATION, rng.choice(IMMUNIZATIONS)))
        else:
            chart.append(Entry(EntryKind.NOTE, PROGRESS_NOTE, TextValue(rng.choice(NOTES))))
    return chart


def _context(actor: Actor, seed: int) -> RequestContext:
    return RequestContext(actor=actor, purpose=Purpose.TREAT, request_id=f"demo-seed-{seed}")


def _a_year_on(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)
