"""Idempotency-Key claims: what a write stores for its key and what a retry is answered."""

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from eventsourcing.domain import Aggregate

from application.context import RequestContext
from application.errors import IdempotencyKeyReused
from application.ports import IdempotencyClaim, IdempotencyRecords


def first_outcome(records: object, ctx: RequestContext) -> tuple[dict[str, Any], int] | None:
    """The result and log position first answered to a request retried with this key."""
    scope = idempotency_scope(ctx)
    if scope is None:
        return None
    assert isinstance(records, IdempotencyRecords), "recorder lacks idempotency"
    prior = records.find_outcome(scope)
    if prior is None:
        return None
    if prior.fingerprint != ctx.request_fingerprint:
        raise IdempotencyKeyReused()
    return orjson.loads(prior.result), prior.position or 0


def claimed_keys(records: object, ctxs: Sequence[RequestContext]) -> list[bool]:
    """Whether each request's Idempotency-Key holds a claim already, in one lookup (a
    bulk import asks for a wave of files at once); ``first_outcome`` answers those."""
    assert isinstance(records, IdempotencyRecords), "recorder lacks idempotency"
    scopes = [idempotency_scope(ctx) for ctx in ctxs]
    claimed = records.claimed_scopes([scope for scope in scopes if scope is not None])
    return [scope in claimed for scope in scopes]


def key_claim(
    ctx: RequestContext, aggregates: Sequence[Aggregate], result: dict[str, Any]
) -> IdempotencyClaim | None:
    scope = idempotency_scope(ctx)
    if scope is None:
        return None
    return IdempotencyClaim(
        scope=scope,
        fingerprint=ctx.request_fingerprint,
        stream_id=aggregates[-1].id,
        stream_version=aggregates[-1].version,
        result=orjson.dumps(result, default=str),
    )


def idempotency_scope(ctx: RequestContext) -> str | None:
    if not ctx.idempotency_key:
        return None
    # Per (organisation, subject): the same subject in another organisation is
    # another person, and must never be answered from this one's claims.
    actor = ctx.actor
    material = f"{actor.org}\x00{actor.id}\x00{ctx.idempotency_key}".encode()
    return hashlib.sha256(material).hexdigest()
