"""Case references hold a 민원 접수번호 or case id, never a person's identifier: they are kept in the audit trail
for good. Every path that takes one (screen, the typed roots, recordConsent) refuses RRN- and phone-shaped ones
with the same clear error, before any work, and the audit store never holds them."""
from __future__ import annotations

import sqlite3

import pytest

from test_screen import GANGNAM, SCREEN, citizens

PERSONAL = [
    "510922-2547567", "5109222547567", "123456-1234567", "510922.2547567", "2026-510922-2547567-A",  # RRN shapes
    "010-1234-5678", "01012345678", "010.123.4567", "011-123-4567", "02-123-4567", "0212345678",  # phones
    "031-123-4567", "070-1234-5678", "0505-123-4567", "82-10-1234-5678", "민원-010-1234-5678",
]
LEGIT = ["2026-복지-0001", "W-1", "01-2024-0001", "A-123456-7", "2026.12.03-0001", "20261203-000123"]

TYPED = 'query($s: ID!, $c: String!) { citizen(rrn: $s, task: "basic_livelihood", caseRef: $c) { name } }'
# the same typed root through graphql-core (a fragment keeps it off the compiled plan, graphql/fast.py)
TYPED_CORE = ('query($s: ID!, $c: String!) { citizen(rrn: $s, task: "basic_livelihood", caseRef: $c) { ...N } } '
              'fragment N on Citizen { name }')
CONSENT = ('mutation($s: ID!, $c: String!) { recordConsent(task: "basic_livelihood", subject: $s, caseRef: $c, '
           'method: "written") { caseRef } }')


def _audit_rows(data_dir) -> list[tuple]:
    with sqlite3.connect(data_dir / "audit.sqlite") as conn:
        return list(conn.execute("SELECT case_ref FROM onescreen_audit")) + \
            list(conn.execute("SELECT case_ref FROM onescreen_consent"))


async def test_a_case_reference_shaped_like_an_rrn_or_a_phone_number_is_refused_on_every_path(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    paths = {"screen": (SCREEN, {"t": "basic_livelihood", "s": rrn}), "typed": (TYPED, {"s": rrn}),
             "typed via graphql-core": (TYPED_CORE, {"s": rrn}), "recordConsent": (CONSENT, {"s": rrn})}
    for case_ref in PERSONAL:
        for path, (query, variables) in paths.items():
            _, body = await api.gql("lee.bokji", query, {**variables, "c": case_ref})
            error = body["errors"][0]
            assert error["extensions"]["code"] == "BAD_REQUEST", (path, case_ref, body)
            assert "resident registration number or a phone number" in error["message"], (path, case_ref)
            assert case_ref not in str(body), (path, case_ref)  # the error does not repeat it
            assert not (body.get("data") or {}).get("screen")
    stored = _audit_rows(data_dir)
    assert not any(c in str(stored) for c in PERSONAL)  # nothing was disclosed, nor recorded, under them


async def test_ordinary_case_references_still_pass_and_are_audited(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    for case_ref in LEGIT:
        _, body = await api.gql("lee.bokji", SCREEN, {"t": "basic_livelihood", "s": rrn, "c": case_ref})
        assert body["data"]["screen"]["caseRef"] == case_ref, body
        _, body = await api.gql("lee.bokji", TYPED, {"s": rrn, "c": case_ref})
        assert "errors" not in body, body
    assert {c for (c,) in _audit_rows(data_dir)} >= set(LEGIT)


@pytest.mark.parametrize("case_ref", PERSONAL)
def test_the_check_names_no_input(case_ref):
    from oneScreen.errors import BadRequest
    from oneScreen.disclose import Door

    with pytest.raises(BadRequest) as info:
        Door.check_case_ref(case_ref)
    assert case_ref not in info.value.message
