"""Property-based and schema-driven fuzzing: no 5xx, no raw value of a masked or denied field, ever."""
from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from graphql import print_schema
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis_graphql import queries
from hypothesis_graphql import nodes

from oneScreen import catalog as catalog_mod, masking, policy
from oneScreen.policy import Caller, Status, Subject, decide
from oneScreen.settings import ROOT

from conftest import Api, sample

CAT = catalog_mod.load(ROOT / "field_catalog.yaml")
POL = policy.load(ROOT / "policies", CAT)
PATHS = [tf for t in POL.tasks.values() for tf in t.fields]  # every path some task names
FIELD_IDS = sorted(CAT.fields)


@given(task=st.sampled_from(sorted(POL.tasks)), field=st.one_of(st.sampled_from(FIELD_IDS), st.text(max_size=40)),
       roles=st.sets(st.sampled_from(sorted(POL.roles) + ["intruder"]), max_size=3),
       in_region=st.sampled_from([None, True, False]), consented=st.sampled_from([None, True, False]))
def test_policy_denies_whatever_the_task_does_not_name(task, field, roles, in_region, consented):
    t = POL.tasks[task]
    caller = Caller("u", "u", "o", "11680", frozenset(roles))
    d = decide(caller, t, field, Subject(in_region, consented))
    if field not in t.fields or not (t.roles & caller.roles):
        assert d.status is Status.DENIED and d.reason and d.reason_en
    if d.allowed:
        assert field in t.fields and t.roles & caller.roles
        tf = t.fields[field]
        assert not tf.consent or consented is True
        assert (d.status is Status.MASKED) == (tf.mask is not None and tf.full_value_basis is None)


rrn_values = st.builds(lambda y, m, d, g, r: f"{y:02d}{m:02d}{d:02d}-{g}{r:06d}", st.integers(0, 99), st.integers(1, 12),
                       st.integers(1, 28), st.integers(1, 4), st.integers(0, 999_999))


@given(rrn=rrn_values)
def test_a_masked_rrn_never_shows_its_back_digits(rrn):
    out = masking.rrn(rrn)
    assert out == rrn[:8] + "******" and rrn[8:] not in out


@given(name=st.text(alphabet="김이박최정강조윤장임한오서신권황안송류전홍길동민준서연지우", min_size=2, max_size=5))
def test_a_masked_name_keeps_only_its_first_and_last_letter(name):
    out = masking.name(name)
    assert len(out) == len(name) and out[0] == name[0] and set(out[1:-1] if len(name) > 2 else out[1:]) <= {"*"}


@given(value=st.text(max_size=60), strategy=st.sampled_from(sorted(masking.STRATEGIES)))
def test_masking_is_total_and_never_echoes_a_maskable_value(value, strategy):
    out = masking.apply(strategy, value)
    assert isinstance(out, str)
    if strategy == "phone" and re.fullmatch(r"\d{3}-\d{4}-\d{4}", value):
        assert value[4:8] not in out


# ---------------------------------------------------------------- the schema-driven fuzzer, against the app


@pytest.fixture
def fuzz_target(make_app, data_dir):
    app = make_app()
    rows = sample(data_dir, "mois_resident:SELECT rrn, name, mbl_telno FROM resident ORDER BY rrn LIMIT 3")
    pk = sample(data_dir, "molit_building:SELECT mgmBldrgstPk FROM bldg_title LIMIT 1")[0][0]
    schema = app.state.runtime.snapshot.schema
    return app, data_dir, rows, pk, print_schema(schema._schema)


def test_schema_driven_queries_never_get_5xx_or_a_raw_masked_value(fuzz_target):
    """As choi.chaeryang (vehicle_transfer: RRN masked, phone denied), whatever query the schema admits,
    with real subjects, tasks and case references as arguments: no 5xx and no raw RRN or phone number."""
    app, data_dir, rows, pk, sdl = fuzz_target
    ids = [r["rrn"] for r in rows] + [pk, "vehicle_transfer", "basic_livelihood", "move_in_report", "x"]
    strings = ["V-1", "citizen", "building", rows[0]["name"], f"{rows[0]['name']} 1990-01-01", "", "written"]
    custom = {"ID": st.sampled_from(ids).map(nodes.String), "String": st.sampled_from(strings).map(nodes.String)}
    secrets_ = [r["rrn"] for r in rows] + [r["mbl_telno"] for r in rows if r["mbl_telno"]]
    api = Api(None, data_dir, app)
    token = api.token("choi.chaeryang")
    loop = asyncio.new_event_loop()

    async def post(query: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(query=queries(sdl, custom_scalars=custom))
    def run(query: str) -> None:
        r = loop.run_until_complete(post(query))
        assert r.status_code < 500, (query, r.text)
        text = r.text
        for secret in secrets_:
            # a raw RRN may come back only as Screen.subject, the caller's own argument echoed
            assert secret not in text.replace(f'"subject":"{secret}"', ""), (query, text)

    try:
        run()
    finally:
        loop.run_until_complete(app.state.runtime.close())
        loop.close()
