"""Identifier lookups are guesses: subjects per request, and the lookup budget of lookups that find nothing.

Pins invariant 1 against the identifier oracle: under a task that denies the RRN, a caller cannot learn it by
looking up guesses (aliases do not multiply lookups; lookups that find nothing are budgeted per user and
organisation, refused with 429 past the budget, audited as a security event, counted and logged without the
guesses), and invariant 12 (the guessed identifiers reach no log line, metric or audit record).
"""
from __future__ import annotations

import io
import json
import logging
import random

import httpx
import pytest

from conftest import Api, sample, token_with
from oneScreen.lookups import InProcessLookupBudget, LookupBudgetExceeded
from oneScreen.logs import JsonFormatter
from test_screen import GANGNAM, SCREEN, citizens, fields_of
from test_search import SUBJECTS

GUESS = 'query($g: ID!) { citizen(rrn: $g, task: "housing_special_supply", caseRef: "H-2026-1") { name } }'


@pytest.fixture
async def api_with(make_app, data_dir):
    made = []

    async def make(**env) -> Api:
        app = make_app(**env)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        made.append((app, client))
        return Api(client, data_dir, app)

    yield make
    for app, client in made:
        await client.aclose()
        await app.state.runtime.close()


def guesses(data_dir, rrn: str, n: int) -> list[str]:
    """`n` RRNs with the target's birth date and sex digit that no demo resident has (wrong guesses)."""
    rng = random.Random(rrn)
    known = {r[0] for r in sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE rrn LIKE ?", rrn[:8] + "%")}
    out: list[str] = []
    while len(out) < n:
        g = f"{rrn[:8]}{rng.randrange(10 ** 6):06d}"
        if g not in known and g not in out:
            out.append(g)
    return out


async def audit_lines(app) -> list[dict]:
    out = io.StringIO()
    await app.state.runtime.audit.export(out)
    return [json.loads(x) for x in out.getvalue().splitlines()]


async def metric(api: Api, name: str) -> float:
    text = (await api.client.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_guessing_an_rrn_the_task_denies_is_stopped_after_the_budget(api, data_dir, caplog):
    """The issue's attack: housing_special_supply never shows the RRN; the caller knows a resident's name and
    birth date and looks up guesses of the rest. Aliases do not multiply lookups; 20 guesses reach the ledger,
    then every lookup by identifier (the right RRN too) is refused with 429, audited, counted and logged
    without any guess."""
    target = sample(data_dir, "mois_resident:SELECT rrn, name FROM resident ORDER BY rrn LIMIT 1 OFFSET 11")[0]
    wrong = guesses(data_dir, target["rrn"], 130)

    # one request, 100 aliased guesses: refused whole before anything is read
    before = await api.fetches()
    aliased = "{ " + " ".join(f'g{i}: citizen(rrn: "{g}", task: "housing_special_supply", caseRef: "H-1") '
                              "{ name }" for i, g in enumerate(wrong[:100])) + " }"
    status, body = await api.gql("jung.jutaek", aliased)
    assert status == 200 and set(body["data"].values()) == {None}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"TOO_MANY_SUBJECTS"}
    assert await api.fetches() == before

    # one guess a request: the first 20 reach the resident register, and find nobody
    with caplog.at_level(logging.INFO):
        for g in wrong[100:120]:
            status, body = await api.gql("jung.jutaek", GUESS, {"g": g})
            assert status == 200 and body["data"]["citizen"]["name"] is None, body
        after = await api.fetches()
        assert after.get("mois.resident", 0) - before.get("mois.resident", 0) == 20
        # then lookups by identifier are refused before any read: the remaining guesses, and the right RRN
        for g in wrong[120:] + [target["rrn"]]:
            r = await api.post("jung.jutaek", GUESS, {"g": g})
            assert r.status_code == 429, r.text
            assert 1 <= int(r.headers["Retry-After"]) <= 600
            body = r.json()
            assert body["data"] == {"citizen": None}
            assert [e["extensions"]["code"] for e in body["errors"]] == ["LOOKUP_BUDGET_EXCEEDED"]
            assert target["name"] not in r.text and g not in r.text
        assert await api.fetches() == after
        # a search by RRN is a lookup by identifier too
        r = await api.post("jung.jutaek", SUBJECTS,
                           {"type": "citizen", "q": target["rrn"], "t": "housing_special_supply"})
        assert r.status_code == 429 and await api.fetches() == after

    assert await metric(api, "onescreen_lookup_misses_total") == 20
    assert await metric(api, 'onescreen_lookup_budget_refusals_total{scope="user"}') == 12
    security = [x for x in await audit_lines(api.app) if x["kind"] == "security"]
    assert len(security) == 12 and {x["private"]["user"] for x in security} == {"jung.jutaek"}
    assert security[0]["detail"] == {"event": "lookup_budget_exceeded", "scope": "user", "limit": 20,
                                     "window_seconds": 600.0}
    assert all(x["subject"] == "" and x["fields"] == [] for x in security)
    exported = json.dumps(await audit_lines(api.app), ensure_ascii=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "lookup budget" in r.getMessage()]
    assert len(warnings) == 12 and all(r.__dict__["user"] == "jung.jutaek" for r in warnings)
    logs = "\n".join(JsonFormatter().format(r) for r in caplog.records) + str([r.__dict__ for r in caplog.records])
    metrics = (await api.client.get("/metrics")).text
    for g in wrong + [target["rrn"]]:
        assert g not in logs and g not in exported and g not in metrics

    # a caseworker of another organisation is not affected
    status, body = await api.gql("choi.chaeryang", """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer",
        caseRef: "V-9") { name } }""", {"s": target["rrn"]})
    assert status == 200 and body["data"]["citizen"]["name"] == target["name"]


async def test_found_lookups_and_search_results_spend_no_budget(api_with, data_dir):
    """An honest caseworker's lookups find their subject: they spend nothing. Only lookups that find nobody
    count, and when the budget is spent the search (by name and birth date, then the handle) still works."""
    api = await api_with(ONESCREEN_LOOKUP_MISSES_PER_USER="3")
    found = citizens(data_dir, 12, "legal_dong_cd LIKE '11110%'")
    q = 'query($s: ID!) { citizen(rrn: $s, task: "move_in_report", caseRef: "M-1") { name } }'
    for rrn in found:
        status, body = await api.gql("kim.jumin", q, {"s": rrn})
        assert status == 200 and body["data"]["citizen"]["name"], body
    wrong = guesses(data_dir, found[0], 4)
    for g in wrong[:3]:
        assert (await api.post("kim.jumin", q, {"s": g})).status_code == 200
    assert (await api.post("kim.jumin", q, {"s": wrong[3]})).status_code == 429
    assert (await api.post("kim.jumin", q, {"s": found[0]})).status_code == 429  # by identifier: refused
    row = sample(data_dir, "mois_resident:SELECT name, birth_date FROM resident WHERE rrn = ?", found[5])[0]
    status, body = await api.gql("kim.jumin", SUBJECTS, {"type": "citizen", "q": f"{row['name']} {row['birth_date']}",
                                                         "t": "move_in_report"})
    assert status == 200 and len(body["data"]["subjects"]) == 1
    status, body = await api.gql("kim.jumin", SCREEN, {"t": "move_in_report", "s": body["data"]["subjects"][0]["id"],
                                                       "c": "M-2"})
    assert status == 200 and fields_of(body["data"]["screen"])["citizen.name"]["value"] == row["name"]
    assert api.app.state.runtime.lookups.misses("user", "kim.jumin") == 3


async def test_an_organisation_budget_holds_across_its_users(api_with, data_dir):
    api = await api_with(ONESCREEN_LOOKUP_MISSES_PER_ORG="4")
    rrn = citizens(data_dir, 1)[0]
    wrong = guesses(data_dir, rrn, 6)
    q = 'query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "V-1") { name } }'
    a, b, other = (token_with(data_dir, user, ["vehicle_registration_officer"], org=org, region="11000")
                   for user, org in (("a.car", "서울 차량등록사업소"), ("b.car", "서울 차량등록사업소"),
                                     ("c.car", "부산 차량등록사업소")))
    for token, g in ((a, wrong[0]), (a, wrong[1]), (a, wrong[2]), (b, wrong[3])):
        assert (await api.post(None, q, {"s": g}, token=token)).status_code == 200
    r = await api.post(None, q, {"s": wrong[4]}, token=b)
    assert r.status_code == 429 and "organisation" in r.json()["errors"][0]["message"]
    assert (await api.post(None, q, {"s": wrong[5]}, token=other)).status_code == 200
    [event] = [x for x in await audit_lines(api.app) if x["kind"] == "security"]
    assert event["private"]["user"] == "b.car" and event["detail"]["scope"] == "organisation"


@pytest.mark.parametrize("query", [
    # typed roots on the compiled path
    '{{ a: citizen(rrn: "{0}", task: "move_in_report", caseRef: "S-1") {{ name }} '
    'b: citizen(rrn: "{1}", task: "move_in_report", caseRef: "S-1") {{ name }} }}',
    # through fragments (graphql-core's executor)
    '{{ a: citizen(rrn: "{0}", task: "move_in_report", caseRef: "S-1") {{ ...N }} '
    'b: citizen(rrn: "{1}", task: "move_in_report", caseRef: "S-1") {{ ...N }} }} fragment N on Citizen {{ name }}',
    # the generic screen
    '{{ a: screen(task: "move_in_report", subject: "{0}", caseRef: "S-1") {{ requestId }} '
    'b: screen(task: "move_in_report", subject: "{1}", caseRef: "S-1") {{ requestId }} }}',
])
async def test_a_caseworker_task_looks_up_one_subject_a_request(api, data_dir, query):
    """Subjects per request (the task's `subjects_per_request`, 1 unless a batch task says more) are counted
    before anything is read: a second subject refuses the whole request, whatever the aliases."""
    a, b = citizens(data_dir, 2, "legal_dong_cd LIKE '11110%'")
    before = await api.fetches()
    status, body = await api.gql("kim.jumin", query.format(a, b))
    assert status == 200 and body["data"] in (None, {"a": None, "b": None}), body  # screen is non-null
    assert [e["extensions"]["code"] for e in body["errors"]] in (["TOO_MANY_SUBJECTS"] * 2, ["TOO_MANY_SUBJECTS"])
    assert "at most 1 subject" in body["errors"][0]["message"] and a not in str(body) and b not in str(body)
    assert await api.fetches() == before
    # the same subject under two aliases is one subject
    status, body = await api.gql("kim.jumin", query.format(a, a))
    assert status == 200 and "errors" not in body, body


async def test_a_batch_task_says_how_many_subjects_one_request_may_look_up(api, data_dir):
    rrns = citizens(data_dir, 101, GANGNAM)
    root = 'c{i}: citizen(rrn: "{r}", task: "basic_livelihood_review", caseRef: "R-1") {{ name }}'
    status, body = await api.gql("lee.bokji", "{ " + " ".join(root.format(i=i, r=r) for i, r in
                                                            enumerate(rrns[:100])) + " }")
    assert status == 200 and "errors" not in body and all(v["name"] for v in body["data"].values())
    # one more than the task allows: refused whole (the document limit of 100 subjects says so first)
    _, body = await api.gql("lee.bokji", "{ " + " ".join(root.format(i=i, r=r) for i, r in enumerate(rrns)) + " }")
    assert body["errors"][0]["extensions"]["code"] in ("QUERY_TOO_COMPLEX", "TOO_MANY_SUBJECTS")
    # mixing in a caseworker task holds the request to that task's one subject
    mixed = ('{ a: citizen(rrn: "%s", task: "basic_livelihood_review", caseRef: "R-2") { name } '
             'b: citizen(rrn: "%s", task: "basic_livelihood", caseRef: "R-2") { name } }' % (rrns[0], rrns[1]))
    _, body = await api.gql("lee.bokji", mixed)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"TOO_MANY_SUBJECTS"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_budget_is_a_sliding_window_of_misses_and_lookups_in_flight():
    clock = Clock()
    budget = InProcessLookupBudget(per_user=2, per_org=3, window=600, clock=clock)
    for _ in range(2):
        await budget.settle(await budget.spend("u", "org"), found=False)
    clock.now += 10
    with pytest.raises(LookupBudgetExceeded) as exc:
        await budget.spend("u", "org")
    assert exc.value.scope == "user" and exc.value.retry_after == pytest.approx(590)
    found = await budget.spend("v", "org")  # another user of the organisation, in flight
    with pytest.raises(LookupBudgetExceeded) as exc:
        await budget.spend("w", "org")  # 2 misses + 1 in flight: the organisation's 3
    assert exc.value.scope == "organisation" and exc.value.retry_after == 1.0  # in flight settles soon
    await budget.settle(found, found=True)  # found: not a miss
    await budget.settle(await budget.spend("w", "org"), found=None)  # learnt nothing: not a miss either
    clock.now += 590.5  # the first misses leave the window
    spent = await budget.spend("u", "org")
    more = [await budget.spend("u", "org", checked=False) for _ in range(5)]  # the rest of a batch request
    with pytest.raises(LookupBudgetExceeded):
        await budget.spend("u", "org")
    for s in [spent, *more]:
        await budget.settle(s, found=True)
    assert budget.misses("user", "u") == 0 and budget.misses("organisation", "org") == 0
    await budget.spend("u", "org")
    off = InProcessLookupBudget(per_user=0, per_org=0, window=60, clock=clock)
    for _ in range(50):
        await off.settle(await off.spend("u", "org"), found=False)  # 0: no limit
