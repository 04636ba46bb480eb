"""Errors that reach a client: no "Did you mean" in production, and never the client's own input back.

An identifier sent in the wrong place (an RRN as a task code, a phone number as a page size) must not come back
in an error message: from there it goes to client logs, screenshots and support tickets (the project's rule: errors
carry a code, never a value or a subject identifier).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, get_named_type, is_composite_type

from conftest import Api, env_for
from test_identity import CLAIMS, production_env
from oneScreen.app import create_app
from oneScreen.settings import load as load_settings

SHAPES = ("510922-2547567", "5109222547567", "010-1234-5678")
NUMBER = 5109222547567
LEAK = re.compile(r"510922-?2547567|010-?1234-?5678|5109222547567")
USERS = ("multi.counter", "yoon.gamsa", "han.catalog", "oh.samu")  # caseworker, auditor, catalog admin, configurer


@pytest.fixture
async def demo(make_app, data_dir):
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client, data_dir, app)
    await app.state.runtime.close()


def _filler(t: Any) -> Any:
    """A harmless value of the argument's type (JSON), for the arguments not under test."""
    named = get_named_type(t)
    if isinstance(named, GraphQLInputObjectType):
        return {name: _filler(f.type) for name, f in named.fields.items() if isinstance(f.type, GraphQLNonNull)}
    value = {"Int": 5, "Float": 1.5, "Boolean": True}.get(named.name, "t1")
    listed = isinstance(t, GraphQLList) or (isinstance(t, GraphQLNonNull) and isinstance(t.of_type, GraphQLList))
    return [value] if listed else value


def _literal(value: Any) -> str:
    """A JSON value as a GraphQL literal (object keys unquoted)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value)


def _wrong_values(t: Any) -> list[Any]:
    """RRN- and phone-shaped values of the argument's type, and of every wrong JSON type."""
    named = get_named_type(t)
    out: list[Any] = [*SHAPES, NUMBER, [SHAPES[0]], {SHAPES[1]: SHAPES[2]}]
    if isinstance(named, GraphQLInputObjectType):
        good = _filler(named)
        out += [{**good, name: shape} for name in named.fields for shape in SHAPES]
        out += [{**good, SHAPES[0]: SHAPES[1]}]
    return out


def _requests(schema: Any) -> list[tuple[str, str, dict, str | None]]:
    """(what, query, variables, operationName) for every argument of every root field and mutation."""
    out = []
    for op, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        for name, field in root.fields.items():
            selection = " { __typename }" if is_composite_type(get_named_type(field.type)) else ""
            for arg_name, arg in field.args.items():
                defs = [f"${a}: {x.type}" for a, x in field.args.items()]
                call = ", ".join(f"{a}: ${a}" for a in field.args)
                fillers = {a: _filler(x.type) for a, x in field.args.items()}
                as_variables = f"{op}({', '.join(defs)}) {{ {name}({call}){selection} }}"
                for value in _wrong_values(arg.type):
                    out.append((f"{name}({arg_name}:) variable {value!r}", as_variables,
                                {**fillers, arg_name: value}, None))
                others = ", ".join(f"{a}: {_literal(fillers[a])}" for a in field.args if a != arg_name)
                for literal in (*(json.dumps(s) for s in SHAPES), str(NUMBER), "510922-2547567", "01012345678",
                                f'["{SHAPES[2]}"]', f'{{ {arg_name}: "{SHAPES[0]}" }}'):
                    args = ", ".join(x for x in (f"{arg_name}: {literal}", others) if x)
                    out.append((f"{name}({arg_name}:) literal {literal}", f"{op} {{ {name}({args}){selection} }}",
                                {}, None))
    two = "query A { me { user } } query B { me { name } }"
    out += [(f"operationName {s}", two, {}, s) for s in SHAPES]
    return out


async def test_no_error_message_repeats_an_identifier_the_client_sent(demo):
    """RRN- and phone-shaped values into every argument of every root field and mutation, as literals and as
    variables of the right and the wrong types, by callers who reach every resolver: no error repeats them."""
    schema = demo.app.state.runtime.snapshot.schema._schema
    requests = _requests(schema)
    assert len(requests) > 500
    tokens = {u: demo.token(u) for u in USERS}
    errors_seen = 0
    for what, query, variables, operation in requests:
        for user in USERS:
            r = await demo.client.post("/graphql", headers={"Authorization": f"Bearer {tokens[user]}"},
                                       json={"query": query, "variables": variables, "operationName": operation})
            errors = r.json().get("errors") or []
            errors_seen += len(errors)
            leaked = LEAK.search(json.dumps(errors, ensure_ascii=False))
            assert leaked is None, (what, user, errors)
    assert errors_seen > len(requests)  # the values were refused, and said so


async def test_the_subjects_search_names_the_right_type_without_repeating_the_wrong_one(demo):
    """Issue 24: `subjects(type:)` answered "...about citizen, not 510922-2547567"."""
    _, body = await demo.gql("multi.counter",
                             'query { subjects(type: "510922-2547567", query: "x", task: "move_in_report") { id } }')
    message = body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "510922" not in message and 'type: "citizen"' in message, message


SUGGESTIBLE = [
    ("field", "{ taks { code } }", None),
    ("argument", '{ citizen(rr: "x", task: "t", caseRef: "c") { name } }', None),
    ("type in a fragment's type condition", '{ me { ...F } } fragment F on Mee { user }', None),
    ("type of a variable", 'query($x: Strng) { changes(status: $x) { id } }', None),
    ("enum value", 'query($s: FieldStatus = OKK) { me { user } }', None),
    ("input field of a literal", 'mutation { proposeFieldMapping(input: {id: "a", ledgr: "b", column: "c", type: "d", '
                                 'label: "e", labelEn: "f", sensitivity: "g"}) { id } }', None),
    ("input field of a variable", 'mutation($i: FieldMappingInput!) { proposeFieldMapping(input: $i) { id } }',
     {"i": {"id": "a", "ledgr": "b", "column": "c", "type": "d", "label": "e", "labelEn": "f", "sensitivity": "g"}}),
    ("typed field", '{ citizen(rrn: "900101-1234567", task: "vehicle_transfer", caseRef: "c") { nme } }', None),
]


@pytest.mark.parametrize("mode", ["demo", "production"])
async def test_production_makes_no_suggestions_for_fields_arguments_types_enum_values_or_input_fields(
        mode, data_dir, tmp_path):
    """Issue 24: production still answered `Unknown argument 'rr' ... Did you mean 'rrn'?`. Demo mode keeps
    the suggestions (a developer's help); production names what is wrong and suggests nothing."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "sso.pem"
    pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    if mode == "production":
        env = production_env(data_dir, pem)
        now = int(time.time())
        token = jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, private, algorithm="RS256")
    else:
        env = env_for(data_dir)
        token = None
    app = create_app(load_settings(env), env)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            api = Api(client, data_dir, app)
            for what, query, variables in SUGGESTIBLE:
                headers = {"Authorization": f"Bearer {token or api.token('han.catalog')}"}
                r = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
                messages = [e["message"] for e in r.json()["errors"]]
                assert messages, (what, r.text)
                suggested = any("Did you mean" in m for m in messages)
                assert suggested is (mode == "demo"), (what, messages)
    finally:
        await app.state.runtime.close()
