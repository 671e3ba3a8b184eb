"""Verification of the tamper-evident chain, for auditors and operators."""

from typing import Any, Protocol

from application.access.roles import ChartAction, require_role
from application.context import RequestContext


class SealedLog(Protocol):
    """The chain over the stored records (implemented beside the recorders)."""

    def verify(self, anchored: dict[str, Any] | None = None) -> dict[str, Any]:
        """``{ok, records_checked, head, first_bad_position?, problem?}``."""
        ...

    def head(self) -> dict[str, Any] | None:
        """``{position, link}`` of the last record, for anchoring elsewhere."""
        ...


class Integrity:
    def __init__(self, log: SealedLog) -> None:
        self.log = log

    def verify(self, ctx: RequestContext, anchored: dict[str, Any] | None = None) -> dict[str, Any]:
        require_role(ctx, ChartAction.VERIFY_LOG)
        return self.log.verify(anchored)

    def head(self, ctx: RequestContext) -> dict[str, Any] | None:
        require_role(ctx, ChartAction.VERIFY_LOG)
        return self.log.head()
