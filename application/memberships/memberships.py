"""Use cases of memberships: enrol, renew, cancel, list, and a sponsor's discontinuation."""

import base64
import binascii
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.access.chart_gate import ChartGate
from application.access.policy import Content
from application.access.roles import ChartAction, require_role
from application.charts.read_models import ReadModels
from application.context import RequestContext
from application.errors import NotFound, VersionConflict
from application.ledger.ledger import CONFLICT_RETRIES, CareLedger, WriteOutcome
from application.ports import Clock, NewId
from domain.errors import InvalidValue
from domain.membership import Membership, membership_active_on
from domain.sponsor import SponsorProgramme
from domain.values import Provenance
from domain.vocabulary import MembershipStatus, Plan

ROSTER_VIEWS = ("roster",)


class Memberships:
    def __init__(
        self, ledger: CareLedger, clock: Clock, new_id: NewId, views: ReadModels, gate: ChartGate
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.new_id = new_id
        self.views = views
        self.gate = gate

    def _by(self, ctx: RequestContext) -> Provenance:
        return Provenance(ctx.actor.id, self.clock())

    def enrol(
        self,
        ctx: RequestContext,
        *,
        patient_id: UUID,
        plan: Plan,
        sponsor_id: str | None,
        annual_fee_cents: int,
        starts_on: date,
        ends_on: date,
    ) -> WriteOutcome:
        require_role(ctx, ChartAction.MANAGE_MEMBERSHIP)
        patient = self.gate.chart(ctx, patient_id, "write")
        self.gate.admit_write(
            ctx, Content.MEMBERSHIP, patient_id, patient.organisation_id, erased=patient.erased
        )
        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior
        membership_id = self.new_id()
        # Only the sponsor's programme can be contended, so retrying is always safe.
        for _ in range(CONFLICT_RETRIES):
            by = self._by(ctx)
            membership = Membership.enrol(
                membership_id=membership_id,
                patient_id=patient_id,
                organisation_id=patient.organisation_id,
                plan=plan,
                sponsor_id=sponsor_id,
                annual_fee_cents=annual_fee_cents,
                starts_on=starts_on,
                ends_on=ends_on,
                by=by,
            )
            to_save: list[Aggregate] = [membership]
            if sponsor_id:
                programme = self._programme(ctx.actor.org, sponsor_id, by)
                programme.enlist(membership_id=membership_id, by=by)
                to_save.append(programme)
            result = {"id": str(membership_id), "version": membership.version}
            try:
                return self.ledger.commit(ctx, to_save, result)
            except IntegrityError:
                continue
        raise VersionConflict()

    def renew(
        self,
        ctx: RequestContext,
        membership_id: UUID,
        *,
        ends_on: date,
        annual_fee_cents: int | None = None,
        expected_version: int | None = None,
    ) -> WriteOutcome:
        def command(membership: Membership) -> None:
            membership.renew(ends_on=ends_on, annual_fee_cents=annual_fee_cents, by=self._by(ctx))

        return self._change(ctx, membership_id, expected_version, command)

    def cancel(
        self,
        ctx: RequestContext,
        membership_id: UUID,
        *,
        reason: str,
        expected_version: int | None = None,
    ) -> WriteOutcome:
        def command(membership: Membership) -> None:
            membership.cancel(reason=reason, by=self._by(ctx))

        return self._change(ctx, membership_id, expected_version, command)

    def _change(
        self,
        ctx: RequestContext,
        membership_id: UUID,
        expected_version: int | None,
        command: Any,
    ) -> WriteOutcome:
        require_role(ctx, ChartAction.MANAGE_MEMBERSHIP)

        def admit(membership: Membership) -> None:
            self.gate.admit_write(
                ctx,
                Content.MEMBERSHIP,
                membership.patient_id,
                membership.organisation_id,
                resource="membership",
            )

        admit(self.ledger.for_check(Membership, membership_id, "membership"))
        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior

        def apply(membership: Membership) -> tuple[list[Membership], dict[str, Any]]:
            command(membership)
            return [membership], {"id": str(membership.id), "version": membership.version}

        return self.ledger.change(
            ctx, Membership, membership_id, "membership", apply, expected_version, admit
        )

    def discontinue_sponsor(
        self, ctx: RequestContext, sponsor_id: str, *, effective_on: date
    ) -> WriteOutcome:
        """Record the discontinuation. The terminations follow from the log, in the
        sponsor discontinuation process, never in this request."""
        require_role(ctx, ChartAction.MANAGE_MEMBERSHIP)
        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior
        for _ in range(CONFLICT_RETRIES):
            by = self._by(ctx)
            programme = self._programme(ctx.actor.org, sponsor_id, by)
            programme.discontinue(effective_on=effective_on, by=by)
            result = {
                "sponsor_id": sponsor_id,
                "version": programme.version,
                "members": len(programme.member_ids),
            }
            try:
                return self.ledger.commit(ctx, [programme], result)
            except IntegrityError:
                continue
        raise VersionConflict()

    def _programme(self, org: str, sponsor_id: str, by: Provenance) -> SponsorProgramme:
        stream_id = SponsorProgramme.stream_id(org, sponsor_id)
        try:
            return self.ledger.load(SponsorProgramme, stream_id, "sponsor")
        except NotFound:
            return SponsorProgramme.start(organisation_id=org, sponsor_id=sponsor_id, by=by)

    def roster(
        self,
        ctx: RequestContext,
        *,
        patient_id: UUID | None = None,
        sponsor_id: str | None = None,
        status: MembershipStatus | None = None,
        limit: int = 1000,
        min_position: int | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Memberships of the actor's organisation, filtered, from the roster view, in
        (starts_on, id) order after the ``after`` key."""
        require_role(ctx, ChartAction.MANAGE_MEMBERSHIP)
        self.views.caught_up(ROSTER_VIEWS, min_position)
        today = self.clock().date()
        items = self.views.roster.memberships(
            ctx.actor.org,
            patient_id=patient_id,
            sponsor_id=sponsor_id,
            status=status.value if status is not None else None,
            limit=limit,
            today=today,
            after=after,
        )
        for item in items:
            ended_on = item.pop("ended_on")
            item["active_today"] = membership_active_on(
                item["status"],
                date.fromisoformat(item["starts_on"]),
                date.fromisoformat(item["ends_on"]),
                date.fromisoformat(ended_on) if ended_on else None,
                today,
            )
        return items

    def roster_page(
        self,
        ctx: RequestContext,
        *,
        patient_id: UUID | None = None,
        sponsor_id: str | None = None,
        status: MembershipStatus | None = None,
        cursor: str | None = None,
        limit: int = 1000,
        min_position: int | None = None,
    ) -> dict[str, Any]:
        """A page of ``roster``: ``{items, next_cursor}``, the cursor null on the last."""
        found = self.roster(
            ctx,
            patient_id=patient_id,
            sponsor_id=sponsor_id,
            status=status,
            limit=limit + 1,  # one more, to know whether another page follows
            min_position=min_position,
            after=decode_roster_cursor(cursor) if cursor else None,
        )
        items = found[:limit]
        last = items[-1] if len(found) > limit else None
        return {
            "items": items,
            "next_cursor": encode_roster_cursor(last["starts_on"], UUID(last["id"]).hex)
            if last
            else None,
        }


def encode_roster_cursor(starts_on: str, membership_hex: str) -> str:
    return base64.urlsafe_b64encode(f"{starts_on}|{membership_hex}".encode()).decode().rstrip("=")


def decode_roster_cursor(cursor: str) -> tuple[str, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        starts_on, membership_hex = text.split("|")
        date.fromisoformat(starts_on)
        UUID(hex=membership_hex)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidValue("cursor", "is not a cursor this API issued") from None
    return starts_on, membership_hex
