"""Per-request context: the caller, the configuration snapshot, and the batcher.

`Context.disclose()` is the one door to data for every GraphQL path: it
decides every requested field (deny by default), passes only allowed paths
on, and batches every subject of the request (aliases, several root fields)
into one resolve() so each ledger is read once per stage (invariant 3).
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from ..catalog import Field
from ..errors import BadRequest, OneScreenError
from ..policy import Caller, Status, Task, decide
from ..screen import FieldResult, SubjectRequest, denied, resolve

if TYPE_CHECKING:
    from ..app import Snapshot

CASE_REF_RE = re.compile(r"^[0-9A-Za-z가-힣._:/-]{1,64}$")


@dataclass
class Context:
    caller: Caller
    snapshot: "Snapshot"
    request_id: str
    client: str = ""
    batcher: "Batcher" = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = Batcher(self)

    def check_subject(self, subject_type: str, key: str) -> None:
        st = self.snapshot.catalog.subject_types[subject_type]
        if not isinstance(key, str) or not st.key_pattern.match(key):
            raise BadRequest(f"the subject is not a valid {st.key_label_en} ({st.key_label})")

    @staticmethod
    def check_case_ref(case_ref: str) -> None:
        if not isinstance(case_ref, str) or not CASE_REF_RE.match(case_ref):
            raise BadRequest("caseRef must be 1-64 letters, digits or . _ : / - (the 민원 접수번호 or case id)")

    async def disclose(self, task: Task, subject_type: str, key: str,
                       paths: Iterable[tuple[Field, ...]]) -> dict[str, FieldResult]:
        """Results for `paths` of one subject: denied ones decided here and never fetched."""
        results: dict[str, FieldResult] = {}
        allowed: list[tuple[Field, ...]] = []
        metrics = self.snapshot.metrics
        for path in paths:
            pid = ">".join(f.id for f in path)
            decision = decide(self.caller, task, pid)
            metrics.decisions.labels(decision.status.value if not decision.allowed else "ALLOW").inc()
            if decision.allowed:
                allowed.append(path)
            else:
                results[pid] = denied(decision)
        if allowed:
            results.update(await self.batcher.load(SubjectRequest(subject_type, key, tuple(allowed))))
        return results


class Batcher:
    """Collects the subject requests of one GraphQL request and resolves them together.

    Dispatch waits until a loop tick passes with no new request, so every root
    field of the operation (they start together) joins the same batch.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: list[tuple[SubjectRequest, asyncio.Future]] = []
        self.scheduled = False
        self.fresh = False

    def load(self, request: SubjectRequest) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((request, future))
        self.fresh = True
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._settle)
        return future

    def _settle(self) -> None:
        if self.fresh:
            self.fresh = False
            asyncio.get_running_loop().call_soon(self._settle)
            return
        self.scheduled = False
        batch, self.pending = self.pending, []
        asyncio.ensure_future(self._dispatch(batch))

    async def _dispatch(self, batch: list[tuple[SubjectRequest, asyncio.Future]]) -> None:
        try:
            results = await resolve([r for r, _ in batch], self.ctx.snapshot.gateway)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else OneScreenError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)


def unavailable_status(result: FieldResult) -> bool:
    return result.status is Status.UNAVAILABLE
