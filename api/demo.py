"""Synthetic demo data: realistic codes, all visit modalities, sponsors and consents."""

import hashlib
import random
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from api.container import Container
from application.context import Actor, RequestContext, Role
from domain.values import Coding, ContactDetails, HumanName, Period, Quantity, TextValue
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
GIVEN = ["Ada", "Grace", "Alan", "Mary", "Omar", "Lena", "Kwame", "Sofia", "Hiro", "Priya"]
FAMILY = ["Lovelace", "Hopper", "Turing", "Seacole", "Haddad", "Novak", "Mensah", "Rossi"]
SPONSORS = ["acme-corp", "globex", "initech"]
ENCOUNTERS = [
    (Modality.VIRTUAL, Coding(SNOMED, "185317003", "Telephone encounter")),
    (Modality.IN_OFFICE, Coding(SNOMED, "308335008", "Patient encounter procedure")),
    (Modality.HOME, Coding(SNOMED, "439708006", "Home visit")),
]
VITALS = [
    (Coding(LOINC, "8867-4", "Heart rate"), 55, 110, "/min"),
    (Coding(LOINC, "8480-6", "Systolic blood pressure"), 100, 165, "mm[Hg]"),
    (Coding(LOINC, "29463-7", "Body weight"), 45, 120, "kg"),
    (Coding(LOINC, "4548-4", "Hemoglobin A1c"), 4, 11, "%"),
    (Coding(LOINC, "2339-0", "Glucose"), 70, 220, "mg/dL"),
]
CODED = [
    (EntryKind.CONDITION, Coding(SNOMED, "44054006", "Type 2 diabetes mellitus"), []),
    (EntryKind.CONDITION, Coding(SNOMED, "38341003", "Hypertensive disorder"), []),
    (EntryKind.MEDICATION, Coding(RXNORM, "860975", "metformin 500 MG Oral Tablet"), []),
    (EntryKind.MEDICATION, Coding(RXNORM, "197361", "amlodipine 5 MG Oral Tablet"), []),
    (EntryKind.IMMUNIZATION, Coding(CVX, "140", "Influenza, seasonal, injectable"), []),
    (EntryKind.ALLERGY, Coding(SNOMED, "91936005", "Allergy to penicillin"), []),
    (EntryKind.CONDITION, Coding(SNOMED, "66214007", "Substance abuse"), ["substance_use"]),
    (EntryKind.CONDITION, Coding(SNOMED, "35489007", "Depressive disorder"), ["mental_health"]),
]
FORM_TEXT = "I agree that CareLedger may share my records with the pharmacy for treatment."


def _ctx(role: Role, actor: str, org: str) -> RequestContext:
    return RequestContext(Actor(actor, role, org), Purpose.TREAT, f"demo-{uuid.uuid4().hex}")


def seed_demo(container: Container, *, patients: int, seed: int) -> str:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable by seed, not secrets
    org = container.settings.org
    clinician = _ctx(Role.CLINICIAN, "dr-demo", org)
    admin = _ctx(Role.ADMIN, "admin-demo", org)
    now = datetime.now(UTC)
    entries = directives = 0
    columns = [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=sys.stderr)) as progress:
        task = progress.add_task("seeding patients", total=patients)
        for number in range(patients):
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            patient_id = uuid.UUID(
                container.patients.register(
                    clinician,
                    mrn=f"DEMO-{number:06d}",
                    name=HumanName(given, family),
                    birth_date=date(
                        rng.randint(1940, 2020), rng.randint(1, 12), rng.randint(1, 28)
                    ),
                    sex=rng.choice(list(AdministrativeSex)),
                    contact=ContactDetails(
                        f"+1-555-01{number % 100:02d}", f"{given}.{family}@example.org".lower()
                    ),
                ).result["id"]
            )
            for _ in range(rng.randint(5, 15)):
                _record_entry(container, clinician, patient_id, rng, now)
                entries += 1
            sponsor = rng.choice(SPONSORS) if rng.random() < 0.5 else None
            starts = (now - timedelta(days=rng.randint(0, 300))).date()
            container.memberships.enrol(
                admin,
                patient_id=patient_id,
                plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
                sponsor_id=sponsor,
                annual_fee_cents=0 if sponsor else 19900,
                starts_on=starts,
                ends_on=starts + timedelta(days=365),
            )
            if rng.random() < 0.35:
                labels = rng.choice([[], [SensitivityLabel.SUBSTANCE_USE]])
                container.consents.grant_directive(
                    clinician,
                    patient_id,
                    grantee="org-pharmacy",
                    purposes=frozenset({Purpose.TREAT}),
                    labels=frozenset(labels),
                    period=Period(now.date(), now.date() + timedelta(days=365)),
                    form_id="consent-general",
                    form_version="2",
                    text_sha256=hashlib.sha256(FORM_TEXT.encode()).hexdigest(),
                    method=SigningMethod.ELECTRONIC,
                )
                directives += 1
            progress.advance(task)
    return (
        f"seeded {patients} patients, {entries} entries, {patients} memberships "
        f"({len(SPONSORS)} sponsors), {directives} consent directives"
    )


def _record_entry(
    container: Container,
    ctx: RequestContext,
    patient_id: uuid.UUID,
    rng: random.Random,
    now: datetime,
) -> None:
    when = now - timedelta(days=rng.randint(1, 700), minutes=rng.randint(0, 1440))
    roll = rng.random()
    modality, value, labels = None, None, []
    if roll < 0.3:
        kind = EntryKind.ENCOUNTER
        modality, code = rng.choice(ENCOUNTERS)
    elif roll < 0.65:
        code, low, high, unit = rng.choice(VITALS)
        kind = EntryKind.LAB_RESULT if unit in ("%", "mg/dL") else EntryKind.OBSERVATION
        value = Quantity(Decimal(rng.randint(low, high)), unit)
    elif roll < 0.9:
        kind, code, labels = rng.choice(CODED)
    else:
        kind, code = EntryKind.NOTE, Coding(LOINC, "11506-3", "Progress note")
        value = TextValue("Doing well; continue current plan; review in three months.")
    container.patients.record_entry(
        ctx,
        patient_id,
        kind=kind,
        code=code,
        value=value,
        effective_at=when,
        modality=modality,
        labels=frozenset(SensitivityLabel(label) for label in labels),
    )
