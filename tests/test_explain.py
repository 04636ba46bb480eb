"""Why, per field: each field of a screen says which policy rule masked, denied or showed it in full, and its
basis (the task's field rule, the legal basis), through GraphQL's FieldValue.explanation. Never a value."""
from __future__ import annotations

import json

from conftest import sample
from test_screen import GANGNAM, citizens, fields_of

SCREEN = """query($t: ID!, $s: ID!, $c: String!) { screen(task: $t, subject: $s, caseRef: $c) {
  sections { fields { id status value explanation { kind rule label labelEn basis basisEn } } } } }"""


async def screen(api, user: str, task: str, rrn: str) -> dict[str, dict]:
    status, body = await api.gql(user, SCREEN, {"t": task, "s": rrn, "c": "2026-EXPLAIN-1"})
    assert status == 200 and "errors" not in body, body
    return fields_of(body["data"]["screen"])


async def test_a_full_rrn_shows_the_legal_basis_that_unmasks_it(api, data_dir):
    rrn = citizens(data_dir, 1, GANGNAM)[0]
    got = await screen(api, "lee.bokji", "basic_livelihood", rrn)
    f = got["citizen.rrn"]
    assert f["status"] == "OK" and f["value"] == rrn
    e = f["explanation"]
    assert e["kind"] == "FULL_VALUE"
    assert e["rule"] == "full value: 국민기초생활 보장법 시행령 제41조(고유식별정보의 처리)"
    assert e["basis"] == "국민기초생활 보장법 시행령 제41조(고유식별정보의 처리)"
    assert "평소에는 가리는 항목" in e["label"] and "usually masked" in e["labelEn"]
    consent = got["citizen.insured_type"]
    assert consent["status"] == "CONSENT_REQUIRED" and consent["explanation"]["kind"] == "CONSENT"
    assert consent["explanation"]["rule"] == "consent required"


async def test_a_masked_value_names_its_rule_and_why_and_never_the_value(api, data_dir):
    rrn = sample(data_dir, "molit_vehicle:SELECT owner_rrn FROM vehicle ORDER BY owner_rrn LIMIT 1")[0][0]
    got = await screen(api, "choi.chaeryang", "vehicle_transfer", rrn)
    f = got["citizen.rrn"]
    assert f["status"] == "MASKED"
    e = f["explanation"]
    assert e["kind"] == "MASK" and e["rule"] == "mask rrn"
    assert "뒷자리 6자리는 가립니다" in e["label"] and "last six digits" in e["labelEn"]
    assert "기본 가림(고유식별정보)" in e["basis"] and "names no legal basis" in e["basisEn"]
    text = json.dumps([x["explanation"] for x in got.values()], ensure_ascii=False)
    assert rrn not in text and rrn[:6] not in text

    name_rrn = citizens(data_dir, 1)[0]
    housing = await screen(api, "jung.jutaek", "housing_special_supply", name_rrn)
    n = housing["citizen.name"]
    assert n["status"] == "MASKED" and n["explanation"]["rule"] == "mask name"
    assert "주택 특별공급 자격 확인" in n["explanation"]["basis"] and "항목 규칙" in n["explanation"]["basis"]
    members = housing["citizen.household>household.members"]["explanation"]
    assert members["kind"] == "MASK" and members["label"].startswith("가림 규칙: 성명:")
    assert housing["citizen.birth_date"]["explanation"]["kind"] == "FIELD_SET"


async def test_a_denied_field_says_which_rule_denied_it(api, data_dir):
    outside = citizens(data_dir, 1, "legal_dong_cd LIKE '11110%'")[0]  # 종로구: lee.bokji works for 강남구
    got = await screen(api, "lee.bokji", "basic_livelihood", outside)
    e = got["citizen.name"]["explanation"]
    assert got["citizen.name"]["status"] == "DENIED"
    assert e["kind"] == "DENY" and e["rule"] == "jurisdiction: own_region"
    assert "관할 구역 규칙" in e["label"] and "국민기초생활 보장법 제21조" in e["basis"]
