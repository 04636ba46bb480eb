"""HTTP routes of the admin pages that GraphQL does not carry well: the task spreadsheet upload and the reports.

POST /admin/tasks/import?name=FILE[&dryRun=1]: the spreadsheet as the raw body (up to MAX_UPLOAD bytes, within
the body timeout), through admin.py's import (task.propose; one change, four eyes). Invalid rows answer 422
with every problem as {row, column, reason, text}. GET /admin/reports/NAME[?format=csv]: the catalog-wide
reports (reports.py) for the roles granted catalog.read. GET /admin/provider[?agency=ID&days=N&format=csv]:
the provider page of the caller's own agency (provider.py; agreement.read). Same identity, rate limits and error shape as
/graphql; no report reads a ledger, so no value can leave through one.
GET /admin/catalog/fields|picker|tasks?q=&offset=&limit=: one bounded page of catalog search results
(catalog_pages.py; limit 1..200, checked before any search). GET /admin/versions/diff?from=&to=: the diff of two
configuration versions (current, before-N, after-N around applied change N), reports.version_diff as the CLI's.
"""
from __future__ import annotations

import asyncio
import math
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import catalog_pages, provider, reports
from .admin import CLIENT
from .consent import today as consent_today
from .endpoint import error, json_response
from .errors import AdminForbidden, OneScreenError, Unauthenticated
from .permissions import belongs
from .http import HttpError, peer, read_body

if TYPE_CHECKING:
    from .runtime import Runtime

MAX_UPLOAD = 16 * 1024 * 1024  # bytes: a national task book (405 tasks x 30 fields) is well below 1 MB as .xlsx
MAX_ROWS = 200  # matrix rows a page shows at once (the CSV has them all)
MAX_TASKS = 40  # matrix columns a page shows at once (narrowed by its task filter; the CSV has them all)
STATUS = {"ADMIN_FORBIDDEN": 403, "IMPORT_INVALID": 422, "CHANGE_INVALID": 422, "CHANGE_REFUSED": 409}


def routes(runtime: "Runtime") -> list[Route]:
    async def identify(request: Request):
        caller = runtime.verifier.identify(request.headers, peer(request))
        refused = await runtime.rate_limits.check(caller.user, caller.org or caller.user)  # as /graphql does
        if refused is not None:
            raise HttpError(429, "RATE_LIMITED", "too many requests; slow down and retry",
                            {"Retry-After": str(max(1, math.ceil(refused[1])))})
        return caller

    async def guarded(request: Request, handler) -> Response:
        try:
            caller = await identify(request)
            await runtime.ready()
            CLIENT.set(request.client.host if request.client else "")  # named by the records of what it changes
            return await handler(request, caller)
        except Unauthenticated as exc:
            return error(401, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})
        except HttpError as exc:
            return error(exc.status, exc.code, exc.message, exc.headers)
        except OneScreenError as exc:
            from .taskbook import ImportInvalid
            if isinstance(exc, ImportInvalid):
                return json_response({"code": exc.code, "message": f"{len(exc.problems)} problem(s); nothing was "
                                      "proposed", "problems": [_problem(p) for p in exc.problems]}, 422)
            errors = getattr(exc, "errors", None)
            body = {"code": exc.code, "message": exc.message}
            if errors and all(isinstance(e, str) for e in errors):
                body["problems"] = [{"text": e} for e in errors]
            return json_response(body, STATUS.get(exc.code, 400))

    async def import_tasks(request: Request) -> Response:
        async def run(request: Request, caller) -> Response:
            runtime.admin._require(caller, "task.propose", "import tasks")  # before reading any upload
            name = Path(request.query_params.get("name") or "tasks.xlsx").name
            suffix = Path(name).suffix.lower()
            if suffix not in (".xlsx", ".csv"):
                raise HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "upload the task spreadsheet as .xlsx or .csv")
            body = await read_body(request, MAX_UPLOAD, runtime.settings.body_timeout)
            dry = request.query_params.get("dryRun") in ("1", "true")
            with tempfile.TemporaryDirectory(prefix="onescreen-upload-") as tmp:
                path = Path(tmp) / f"upload{suffix}"
                await asyncio.to_thread(path.write_bytes, body)
                plan, p = await runtime.admin.import_tasks(caller, path, name=name, dry_run=dry)
            return json_response({
                "summary": plan.summary, "tasks": plan.tasks, "dryRun": dry,
                "changes": [{"code": c.code, "kind": c.kind, "lines": list(c.lines)} for c in plan.changes],
                "change": None if p is None else {"id": p.id, "status": p.status, "summary": p.summary,
                                                  "widening": list(p.widening)}}, headers={"Cache-Control": "no-store"})
        return await guarded(request, run)

    async def report(request: Request) -> Response:
        async def run(request: Request, caller) -> Response:
            snap = runtime.snapshot
            snap.policies.permissions.require(caller, "catalog.read", what="read the catalog reports")
            name = request.path_params["name"]
            q = request.query_params
            header, rows, extra = _report(snap.catalog, snap.policies, name, q, runtime.settings.demo)
            if q.get("format") == "csv":
                return Response(reports.rows_csv(header, rows), media_type="text/csv; charset=utf-8",
                                headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                                         "Cache-Control": "no-store"})
            return json_response({"header": header, "rows": rows, **extra}, headers={"Cache-Control": "no-store"})
        return await guarded(request, run)

    def searching(kind: str):
        async def endpoint(request: Request) -> Response:
            async def run(request: Request, caller) -> Response:
                try:  # the bounds first: an over-limit request does no work
                    offset, limit, text = catalog_pages.bounds(request.query_params)
                except catalog_pages.QueryRefused as exc:
                    raise HttpError(400, "BAD_REQUEST", str(exc)) from None
                snap = runtime.snapshot
                snap.policies.permissions.require(caller, "catalog.read", what="browse the catalog")
                q = request.query_params
                try:
                    if kind == "fields":
                        body = catalog_pages.search_fields(snap.catalog, snap.policies, q, offset, limit, text)
                    elif kind == "picker":
                        body = catalog_pages.search_picker(snap.catalog, snap.policies, q.get("subject", ""),
                                                           offset, limit, text)
                    else:
                        body = await asyncio.to_thread(catalog_pages.search_tasks, snap.catalog, snap.policies, q,
                                                       offset, limit, text)
                except catalog_pages.QueryRefused as exc:
                    raise HttpError(400, "BAD_REQUEST", str(exc)) from None
                return json_response(body, headers={"Cache-Control": "no-store"})
            return await guarded(request, run)
        return endpoint

    async def compare(request: Request) -> Response:
        async def run(request: Request, caller) -> Response:
            q = request.query_params
            fields, tasks = await runtime.admin.compare(caller, q.get("from", ""), q.get("to", "current"))
            return json_response({"fields": fields, "tasks": [{"code": c.code, "kind": c.kind, "lines": list(c.lines)}
                                                              for c in tasks]}, headers={"Cache-Control": "no-store"})
        return await guarded(request, run)

    async def provider_page(request: Request) -> Response:
        async def run(request: Request, caller) -> Response:
            snap = runtime.snapshot
            snap.policies.permissions.require(caller, "agreement.read", what="read a provider page")
            mine = [a for a in snap.catalog.agencies.values() if belongs(caller.org, a.name)]
            agency = request.query_params.get("agency") or (mine[0].id if mine else "")
            if agency not in {a.id for a in mine}:
                raise AdminForbidden("you may read the provider page of your own agency only (your organisation "
                                     "must be the agency's or one of its parts)")
            days = request.query_params.get("days", "")
            today = consent_today(snap.consents.clock())
            since = today - timedelta(days=int(days) - 1) if days.isdigit() and 0 < int(days) <= 3660 else None
            v = await provider.view(snap.audit, snap.catalog, snap.policies, agency, today, since)
            if request.query_params.get("format") == "csv":
                return Response(provider.to_csv(v), media_type="text/csv; charset=utf-8",
                                headers={"Content-Disposition": f'attachment; filename="provider-{agency}.csv"',
                                         "Cache-Control": "no-store"})
            return json_response(provider.to_json(v, snap.catalog, today), headers={"Cache-Control": "no-store"})
        return await guarded(request, run)

    return [Route("/admin/tasks/import", import_tasks, methods=["POST"]),
            Route("/admin/reports/{name}", report, methods=["GET"]),
            Route("/admin/catalog/fields", searching("fields"), methods=["GET"]),
            Route("/admin/catalog/picker", searching("picker"), methods=["GET"]),
            Route("/admin/catalog/tasks", searching("tasks"), methods=["GET"]),
            Route("/admin/versions/diff", compare, methods=["GET"]),
            Route("/admin/provider", provider_page, methods=["GET"])]


def _problem(p: Any) -> dict[str, Any]:
    return {"file": p.file, "sheet": p.sheet, "row": p.row, "column": p.column, "reason": p.reason, "text": str(p)}


def _report(cat, pol, name: str, q, demo: bool) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    if name == "matrix":
        text = q.get("tasks", "").strip().lower()
        codes = [c for c, t in sorted(pol.tasks.items()) if not text or text in c or text in t.name.lower()]
        m = reports.matrix(cat, pol, sensitivity=q.getlist("sensitivity"), agency=q.getlist("agency"),
                           tasks=codes[:MAX_TASKS] if q.get("format") != "csv" else codes, text=q.get("q", ""),
                           used_only=q.get("used") in ("1", "true"))
        rows = [[f.id, f.label, f.label_en, f.ledger.agency.id, f.sensitivity, *cells] for f, cells in m.rows]
        offset = int(q["offset"]) if q.get("offset", "").isdigit() else 0
        shown = rows if q.get("format") == "csv" else rows[offset:offset + MAX_ROWS]
        return (["field", "label", "label_en", "agency", "sensitivity", *m.tasks], shown,
                {"totalRows": len(rows), "totalTasks": len(codes), "offset": offset,
                 "taskNames": {c: [pol.tasks[c].name, pol.tasks[c].name_en] for c in m.tasks}})
    if name == "unused":
        return (["field", "label", "agency", "ledger", "sensitivity"],
                [[f.id, f.label, f.ledger.agency.id, f.ledger.id, f.sensitivity]
                 for f in reports.unused_fields(cat, pol)], {})
    if name == "no-basis":
        return (["task", "field", "sensitivity", "reason"],
                [[t.code, tf.id, tf.target.sensitivity, why] for t, tf, why in reports.without_basis(pol)], {})
    if name == "idle-roles":
        return (["role", "label", "admin actions"],
                [[r, label, " ".join(actions)] for r, label, actions in reports.idle_roles(pol)], {})
    if name == "full-view":
        fid = q.get("field", "")
        if fid not in cat.fields:
            raise HttpError(400, "BAD_REQUEST", "give ?field= a catalog field id, e.g. citizen.rrn")
        from .identity import demo_users
        users = [(u.user, u.roles) for u in demo_users()] if demo else []
        views = reports.who_sees_in_full(pol, fid)
        roles = sorted({r for v in views for r in v.roles})
        return (["task", "path", "roles", "consent", "basis", "demo users"],
                [[v.task, v.path, " ".join(v.roles), v.consent, v.basis, len(reports.users_with(v.roles, users))]
                 for v in views], {"tasks": len(views), "roles": roles,
                                   "users": len(reports.users_with(roles, users))})
    raise HttpError(404, "NOT_FOUND", "reports: matrix, unused, no-basis, idle-roles, full-view")
