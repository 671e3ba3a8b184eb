"""The event-sourced application that holds every stream, and its write discipline."""

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    ProcessRecorder,
    Recording,
    Tracking,
    Transcoder,
)
from eventsourcing.utils import EnvType

from application.context import RequestContext
from application.errors import (
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
    VersionConflict,
    WriteNotCommitted,
    WriteOutcomeUnknown,
)
from application.ledger.attested_writes import Attestation, Attestations, Attested
from application.ledger.batcher import NotCommitted, OutcomeUnknown
from application.ledger.group_writes import GroupWrites, PendingSave, Recordings
from application.ledger.idempotency import claimed_keys, first_outcome, key_claim
from application.ledger.snapshots import snapshots_due
from application.ledger.transcodings import OrjsonTranscoder, register_clinical_transcodings
from application.ports import (
    FOLLOW_UP,
    SNAPSHOTS,
    SnapshotsAlongside,
    StreamLookup,
)
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.sponsor import SponsorProgramme

A = TypeVar("A", bound=Aggregate)

# Saves that lose a race are retried against fresh state this many times, unless the
# caller pinned a version with If-Match.
CONFLICT_RETRIES = 8


@dataclass(frozen=True)
class WriteOutcome:
    """What a command returns: its result fields and the log position it reached;
    ``replayed`` if it is the first outcome of a request retried with the same
    Idempotency-Key (so anything attested was attested then, not now)."""

    result: dict[str, Any]
    position: int
    replayed: bool = False

    def body(self) -> dict[str, Any]:
        return {**self.result, "position": self.position}


class CareLedger(Application[UUID]):
    """All of the clinic's streams in one log, so a log position orders everything."""

    name = "CareLedger"
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "2000",
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Patient: 100,
        Consent: 50,
        Membership: 50,
        SponsorProgramme: 100,
    }

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        self._listeners: list[Callable[[int, frozenset[str]], None]] = []
        # Commands' saves share transactions when set (the service sets it).
        self.group_writes: GroupWrites | None = None
        self._snapshots_alongside = False
        if self.snapshots is not None and isinstance(self.recorder, SnapshotsAlongside):
            self.recorder.snapshot_into(self.snapshots.recorder)
            self._snapshots_alongside = True

    recorder: ProcessRecorder

    def construct_recorder(self) -> ProcessRecorder:
        # A process recorder, so that processes can commit tracking with their events.
        return self.factory.process_recorder()

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_clinical_transcodings(transcoder)

    # Snapshots -----------------------------------------------------------------------

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """The library's step after a save; ours are written in the save's transaction
        (``_record``) when the recorder can, and only otherwise here, after it."""
        alongside = self._snapshots_alongside
        if not alongside and self.snapshots and (due := self._due(processing_event)):
            self.snapshots.put(due)

    def _due(self, processing_event: ProcessingEvent[UUID]) -> list[Any]:
        return snapshots_due(processing_event, self.snapshotting_intervals, self.snapshot_class)

    # Notification of followers -------------------------------------------------------

    def on_recorded(self, listener: Callable[[int, frozenset[str]], None]) -> None:
        """Call ``listener(max_position, topics)`` after each commit by this process."""
        self._listeners.append(listener)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings and self._listeners:
            position = max(r.notification.id for r in recordings)
            topics = frozenset(r.notification.topic for r in recordings)
            for listener in self._listeners:
                listener(position, topics)

    # Loading -------------------------------------------------------------------------

    def load(self, cls: type[A], stream_id: UUID, resource: str) -> A:
        try:
            aggregate: Aggregate = self.repository.get(stream_id)
        except AggregateNotFoundError:
            raise NotFound(resource) from None
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailable(str(type(error).__name__)) from None
        if not isinstance(aggregate, cls):
            raise NotFound(resource)
        return aggregate

    def cached(self, cls: type[A], stream_id: UUID) -> A | None:
        """The aggregate as this process last saved or read it, if it is cached (never
        a store read). The cached object itself: a command changes a copy of it."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            found = cache.get(stream_id)
        except KeyError:
            return None
        return found if isinstance(found, cls) else None

    def for_check(self, cls: type[A], stream_id: UUID, resource: str) -> A:
        """The aggregate as this process last saw it, for an authorisation check made
        before a command runs: what it checks (the organisation, erasure) is re-checked
        on the fresh copy the command itself works on. Read, never changed, so not
        copied."""
        found = self.cached(cls, stream_id)
        return found if found is not None else self.load(cls, stream_id, resource)

    def _for_command(self, cls: type[A], stream_id: UUID, resource: str) -> A:
        """The aggregate a command works on: a copy of this process's cached one as it
        last saved or read it, without asking the store whether another process wrote
        since.

        ``load`` asks (the library's fast-forward: a query, and a decryption of the
        events found, per command). A command does not need to: its save is refused if
        the stream moved on (the version is unique in the log), and ``change`` then
        brings the copy up to date through ``load``.
        """
        found = self.cached(cls, stream_id)
        return deepcopy(found) if found is not None else self.load(cls, stream_id, resource)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> Recordings:
        """The library's step, and the saved aggregates kept as the cached copies (the
        library does so itself only without fast-forward). Here, so that they are
        cached in commit order, before any caller of the save is released. Snapshots
        that the save brings due are sealed here and inserted in its transaction."""
        due = self._due(processing_event) if self._snapshots_alongside else []
        if due and self.snapshots:
            # Sealed when the recorder asks: by then the events are, and a new chart's
            # data key (staged by its first event) exists for its snapshot too.
            to_stored = self.snapshots.mapper.to_stored_event
            sealed = functools.cache(lambda: [to_stored(s) for s in due])
            processing_event.saved_kwargs[SNAPSHOTS] = sealed
        recordings = super()._record(processing_event)
        cache = self.repository.cache
        if cache is not None and self.repository.fastforward:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                cache.put(aggregate_id, aggregate)
        return recordings

    def record_saves(self, group: Sequence[PendingSave]) -> list[Recordings]:
        """Write the saves in one transaction, with their claims and the access records
        of the attested ones (made in it once positions are known); each save's
        recordings, in order."""
        shared: ProcessingEvent[UUID] = ProcessingEvent()
        attested: list[Attested] = []
        for save in group:
            shared.events += save.events.events
            shared.aggregates.update(save.events.aggregates)
            if save.attestation is not None:
                attested.append(Attested(len(shared.events) - 1, save.result, save.attestation))
        claims = [save.claim for save in group if save.claim is not None]
        if claims:
            shared.saved_kwargs["idempotency"] = claims
        recordings = self._saved(shared, Attestations(self.mapper, attested) if attested else None)
        by_event = {id(r.domain_event): r for r in recordings}
        return [[by_event[id(e)] for e in save.events.events] for save in group]

    def save_tracked(self, aggregates: Sequence[Aggregate], tracking: Tracking) -> Recordings:
        """A process's step: the aggregates' new events and the tracking record of the
        notification it processed, in one transaction; ``IntegrityError`` if another
        writer got to either first."""
        processing: ProcessingEvent[UUID] = ProcessingEvent(tracking)
        processing.collect_events(*aggregates)
        return self._saved(processing)

    def save_events(
        self, events: Sequence[DomainEventProtocol[UUID]], tracking: Tracking | None = None
    ) -> None:
        """Save new events (not aggregates: nothing to snapshot or cache), with a
        tracking record, if any, in the same transaction."""
        processing: ProcessingEvent[UUID] = ProcessingEvent(tracking)
        # Appended as collect_events() would, without its two runtime Protocol checks
        # per event, a tenth of the access log's group commit CPU.
        processing.events.extend(events)
        self._notify(self._record(processing))

    def _saved(
        self, processing: ProcessingEvent[UUID], attestations: Attestations | None = None
    ) -> Recordings:
        """The library's steps of ``Application.save``, for events already collected:
        record them (with the access records ``attestations`` makes in the same
        transaction), snapshot where an interval is crossed, notify followers."""
        if attestations is not None:
            processing.saved_kwargs[FOLLOW_UP] = attestations
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings + (attestations.recordings() if attestations else []))
        return recordings

    def erased_organisation(self, patient_id: UUID) -> str | None:
        """The care organisation an erased chart's tombstone names (sealed with the
        system key, and always the chart's last event); None if it names none."""
        last = list(self.events.get(patient_id, desc=True, limit=1))
        if last and isinstance(last[0], Patient.Erased):
            return last[0].organisation_id
        return None

    def existing(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any record in the log (no decryption)."""
        lookup = self.recorder
        assert isinstance(lookup, StreamLookup), "recorder lacks stream lookup"
        return lookup.existing_streams(stream_ids)

    def events_at(self, stream_id: UUID, versions: Sequence[int]) -> list[Any]:
        """These versions of one stream, decrypted, in version order: one query, however
        far apart they lie in the stream."""
        lookup = self.recorder
        assert isinstance(lookup, StreamLookup), "recorder lacks stream lookup"
        to_domain_event = self.mapper.to_domain_event
        return [to_domain_event(s) for s in lookup.select_versions(stream_id, versions)]

    def forget(self, *stream_ids: UUID) -> None:
        """Drop decrypted aggregates from this process's cache (after crypto-shredding)."""
        cache = self.repository.cache
        if cache is None:
            return
        for stream_id in stream_ids:
            with contextlib.suppress(KeyError):
                cache.get(stream_id, evict=True)

    # Writing -------------------------------------------------------------------------

    def repeated(self, ctx: RequestContext) -> WriteOutcome | None:
        """The first outcome of a retried request with the same Idempotency-Key."""
        prior = first_outcome(self.recorder, ctx)
        return None if prior is None else WriteOutcome(*prior, replayed=True)

    def claimed(self, ctxs: Sequence[RequestContext]) -> list[bool]:
        """Whether each request's Idempotency-Key was claimed by an earlier write."""
        return claimed_keys(self.recorder, ctxs)

    def commit(
        self,
        ctx: RequestContext,
        aggregates: Sequence[Aggregate],
        result: dict[str, Any],
        attestation: Attestation | None = None,
    ) -> WriteOutcome:
        """Save the aggregates atomically, with the idempotency claim if any, and with
        the access record ``attestation`` makes once the write's position is known
        (see ``attested_writes``)."""
        return self.submit(ctx, aggregates, result, attestation)()

    def submit(
        self,
        ctx: RequestContext,
        aggregates: Sequence[Aggregate],
        result: dict[str, Any],
        attestation: Attestation | None = None,
    ) -> Callable[[], WriteOutcome]:
        """``commit``, queued for the group commit (or held back while this thread
        gathers, ``GroupWrites.gather``) and answered by the call returned, so that an
        import plans its next file meanwhile. Without a committer the save is written
        when the call is made."""
        save = PendingSave.of(aggregates, key_claim(ctx, aggregates, result), result, attestation)

        def written() -> Recordings:
            return self.record_saves([save])[0]

        wait = self.group_writes.queue(save) if self.group_writes else written
        return functools.partial(self._outcome, ctx, save, wait)

    def _outcome(
        self, ctx: RequestContext, save: PendingSave, wait: Callable[[], Recordings]
    ) -> WriteOutcome:
        try:
            with failed_commits_answered():
                recordings = wait()
        except IntegrityError:
            # Either a concurrent writer won the race, or a retry of this very request
            # did. Only the second is answered from the claim.
            if save.claim is not None and (prior := self.repeated(ctx)) is not None:
                return prior
            raise
        return WriteOutcome(save.result, max(r.notification.id for r in recordings))

    def change(
        self,
        ctx: RequestContext,
        cls: type[A],
        stream_id: UUID,
        resource: str,
        apply: Callable[[A], tuple[Sequence[Aggregate], dict[str, Any]]],
        expected_version: int | None = None,
        admit: Callable[[A], None] | None = None,
        attestation: Attestation | None = None,
    ) -> WriteOutcome:
        """Load, apply the command, save; retry a lost race on fresh state unless If-Match pins it.

        ``admit`` raises unless the actor may touch the stream at all. It runs before
        the If-Match comparison, so a 412 never reveals a stream's version to someone
        who should have been told 404. ``apply`` runs the command on the aggregate
        and returns what to save and the result fields. It may raise domain or
        application errors.
        """
        stale = False
        for _ in range(CONFLICT_RETRIES):
            if stale:  # the cached copy is behind the store: bring it up to date
                aggregate = self.load(cls, stream_id, resource)
            else:
                aggregate = self._for_command(cls, stream_id, resource)
            if expected_version is not None and aggregate.version != expected_version:
                aggregate = self.load(cls, stream_id, resource)  # the copy may be behind
            if admit is not None:
                admit(aggregate)
            if expected_version is not None and aggregate.version != expected_version:
                raise PreconditionFailed(expected_version, aggregate.version)
            to_save, result = apply(aggregate)
            try:
                return self.commit(ctx, to_save, result, attestation)
            except IntegrityError:
                # The cached copy is an earlier state of the stream (a command works on
                # a copy of it): the next attempt fast-forwards it from the store.
                stale = True
                if expected_version is not None:
                    latest = self.load(cls, stream_id, resource)
                    raise PreconditionFailed(expected_version, latest.version) from None
        raise VersionConflict()


@contextlib.contextmanager
def failed_commits_answered() -> Iterator[None]:
    """A commit that failed, raised as the answer must put it: not committed, or not
    known (the connection may have failed during COMMIT, so the answer cannot say no).
    A lost race (``IntegrityError``) is left to the caller."""
    try:
        yield
    except NotCommitted:
        raise WriteNotCommitted() from None
    except (OperationalError, InterfaceError, OutcomeUnknown):
        raise WriteOutcomeUnknown() from None
