"""Compiled typed queries (oneScreen/graphql/fast.py) answer exactly as graphql-core does.

Generated typed queries (random selections over the demo catalog's typed objects: links, records,
lists, aliases, __typename, several roots, variables right and wrong, subjects that exist, do not exist
or are malformed, tasks that fit the subject or not, masked, denied and consent-gated fields, callers
in and out of the task's jurisdiction) run once on the compiled plan and once on graphql-core, through
the real HTTP endpoint of the demo app. The responses must be identical (data, error messages, paths,
locations, codes, order), and so must the audit records the two runs leave.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import sqlite3
from typing import Any

import httpx
import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType

from conftest import Api, sample
from oneScreen.settings import ROOT

USERS = ("multi.counter", "lee.bokji", "jung.jutaek", "park.geonchuk", "choi.chaeryang", "kim.jumin")


def _named(t: Any) -> Any:
    while isinstance(t, (GraphQLList, GraphQLNonNull)):
        t = t.of_type
    return t


def _selection(rng: random.Random, obj: GraphQLObjectType, depth: int) -> str:
    names = list(obj.fields)
    parts = []
    for i, name in enumerate(rng.sample(names, rng.randint(1, min(7, len(names))))):
        alias = f"x{i}{name}: " if rng.random() < 0.2 else ""
        t = _named(obj.fields[name].type)
        if isinstance(t, GraphQLObjectType):
            if depth < 2:
                parts.append(f"{alias}{name} {{ {_selection(rng, t, depth + 1)} }}")
        else:
            parts.append(alias + name)
    if rng.random() < 0.15 or not parts:
        parts.append("__typename")
    return " ".join(parts)


def _keys(data_dir) -> dict[str, list[str]]:
    return {
        "citizen": [r[0] for r in sample(data_dir, "mois_resident:SELECT rrn FROM resident ORDER BY rrn LIMIT ?", 40)],
        "building": [r[0] for r in sample(data_dir, "molit_building:SELECT mgmBldrgstPk FROM bldg_title LIMIT ?", 10)],
        "parcel": [r[0] for r in sample(data_dir, "molit_land:SELECT pnu FROM land LIMIT ?", 10)],
        "household": [r[0] for r in sample(data_dir, "mois_resident:SELECT DISTINCT hshld_id FROM resident LIMIT ?", 10)],
    }


NOT_THERE = {"citizen": "991231-2999999", "building": "NOPE-00000", "parcel": "9999999999999999999",
             "household": "H999999999"}


def _query(rng: random.Random, schema: Any, keys: dict[str, list[str]], tasks: dict[str, str]) -> tuple[str, dict]:
    query_type = schema.query_type
    roots = [n for n in ("citizen", "building", "parcel", "household") if n in query_type.fields]
    variables: dict[str, Any] = {}
    defs: list[str] = []
    parts = []
    for i in range(rng.choice((1, 1, 1, 2, 3))):
        root = rng.choice(roots)
        field = query_type.fields[root]
        key_arg = next(a for a in field.args if a not in ("task", "caseRef"))
        roll = rng.random()
        key = (rng.choice(keys[root]) if roll < 0.75 and keys[root] else NOT_THERE[root] if roll < 0.9
               else "not a key")
        task = tasks.get(root, "move_in_report") if rng.random() < 0.85 else rng.choice(sorted(set(tasks.values())))
        case_ref = "T-1" if rng.random() < 0.92 else "bad ref!"
        if rng.random() < 0.4:
            defs.append(f"$k{i}: ID!")
            roll = rng.random()
            if roll < 0.85:
                variables[f"k{i}"] = key
            elif roll < 0.93:
                variables[f"k{i}"] = 12345  # an Int is a valid ID (coerced to "12345")
            # else: the variable is missing
            key_src = f"$k{i}"
        else:
            key_src = json.dumps(key)
        alias = f"r{i}: " if i or rng.random() < 0.3 else ""
        parts.append(f'{alias}{root}({key_arg}: {key_src}, task: "{task}", caseRef: "{case_ref}") '
                     f"{{ {_selection(rng, field.type, 0)} }}")
    head = f"query Q({', '.join(defs)})" if defs else rng.choice(("", "query", "query Named"))
    return f"{head} {{ {' '.join(parts)} }}", variables


async def _audit(app: Any, request_id: str) -> list[tuple]:
    out = io.StringIO()
    await app.state.runtime.audit.export(out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return [(x["kind"], x["task"], x["case_ref"], x["subject_type"], x["subject"], x["fields"], x["ledgers"], x["role"])
            for x in lines if x["request_id"] == request_id]


@pytest.mark.parametrize("seed", range(4))
async def test_compiled_typed_queries_answer_exactly_as_graphql_core(api, data_dir, seed):
    runtime = api.app.state.runtime
    schema = runtime.snapshot.schema
    core = schema._schema
    keys = _keys(data_dir)
    tasks = {"citizen": "basic_livelihood_review", "building": "building_use_change"}
    rng = random.Random(seed)
    compiled = 0
    for n in range(18):
        query, variables = _query(rng, core, keys, tasks)
        user = rng.choice(USERS)
        runs = []
        for mode in (True, False):
            schema.compiled = mode
            status, body = await api.gql(user, query, variables)
            request_id = body.get("extensions", {}).pop("requestId", None)
            for e in body.get("errors", ()):
                e.get("extensions", {}).pop("requestId", None)  # on masked errors
            # compared as text: key order and 3 vs 3.0 count too
            runs.append((status, json.dumps(body, ensure_ascii=False),
                         await _audit(api.app, request_id) if request_id else None))
        schema.compiled = True
        assert runs[0] == runs[1], f"seed {seed} case {n}: {user}\n{query}\n{variables}"
        compiled += schema.prepare(query)[2] is not None
    assert compiled >= 16, "most generated queries must take the compiled path, or this test proves nothing"


async def test_a_null_inside_a_list_nulls_the_list_with_graphql_cores_error(make_app, data_dir, tmp_path):
    """A ledger row with no plate number: the list's items are non-null, so the whole list is null and the
    error is reported at the item, on both paths."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    task = policies / "tasks" / "vehicle_transfer.yaml"
    task.write_text(task.read_text(encoding="utf-8") + "      - citizen.vehicle_plate_numbers\n", encoding="utf-8")
    agreement = policies / "agreements" / "molit-vehicle-transfer.yaml"  # MOLIT shares it for the task too
    agreement.write_text(agreement.read_text(encoding="utf-8").replace(
        "fields:\n", "fields:\n  - citizen.vehicle_plate_numbers\n"), encoding="utf-8")
    app = make_app(ONESCREEN_POLICIES=str(policies))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://onescreen.test") as c:
        try:
            await _null_in_list(Api(c, data_dir, app), data_dir)
        finally:
            await app.state.runtime.close()


async def _null_in_list(api, data_dir) -> None:
    owner, plate = sample(data_dir, "molit_vehicle:SELECT owner_rrn, vhrNo FROM vehicle ORDER BY owner_rrn LIMIT 1")[0]
    with sqlite3.connect(data_dir / "demo" / "molit_vehicle.sqlite") as db:
        db.execute("UPDATE vehicle SET vhrNo = NULL, dsplvl = 3000000000 WHERE vhrNo = ?", (plate,))
    query = (f'{{ citizen(rrn: "{owner}", task: "vehicle_transfer", caseRef: "T-1") '
             "{ name vehiclePlateNumbers vehicles { plateNo displacement } } }")
    schema = api.app.state.runtime.snapshot.schema
    assert schema.prepare(query)[2] is not None
    bodies = []
    for mode in (True, False):
        schema.compiled = mode
        status, body = await api.gql("choi.chaeryang", query)
        for part in (body, *body.get("errors", ())):
            part.get("extensions", {}).pop("requestId", None)
        bodies.append(json.dumps(body, ensure_ascii=False))
    schema.compiled = True
    assert bodies[0] == bodies[1]
    body = json.loads(bodies[0])
    assert body["data"]["citizen"]["vehiclePlateNumbers"] is None and body["data"]["citizen"]["name"]
    # graphql-core's TypeError is not one of ours, so the caller sees it masked (and the log has it)
    # and a displacement beyond GraphQL's 32-bit Int is a bad value of its cell, at its place, without the value
    assert [(e["message"], e["path"]) for e in body["errors"]] == [
        ("Internal error", ["citizen", "vehiclePlateNumbers", 0]),
        ("field citizen.vehicles.displacement: the ledger's value cannot be shown: an integer beyond GraphQL's "
         "32-bit Int: read it with the screen query, or map the column as type string",
         ["citizen", "vehicles", 0, "displacement"])]
    assert body["errors"][1]["extensions"]["code"] == "BAD_VALUE" and "3000000000" not in bodies[0]


async def test_queries_outside_the_compiled_shape_still_run_on_graphql_core(api, data_dir):
    """Fragments and directives are not compiled; they answer through graphql-core as before."""
    schema = api.app.state.runtime.snapshot.schema
    rrn = _keys(data_dir)["citizen"][0]
    for query in (
        'query($s: ID!) { citizen(rrn: $s, task: "move_in_report", caseRef: "T-1") { ...F } } '
        "fragment F on Citizen { name }",
        'query($s: ID!, $y: Boolean!) { citizen(rrn: $s, task: "move_in_report", caseRef: "T-1") '
        "{ name @include(if: $y) } }",
        'query($s: ID!) { citizen(rrn: $s, task: "move_in_report", caseRef: "T-1") { name } me { user } }',
    ):
        assert schema.prepare(query)[2] is None
        status, body = await api.gql("kim.jumin", query, {"s": rrn, "y": True})
        assert status == 200 and "errors" not in body and body["data"]["citizen"]["name"], body
