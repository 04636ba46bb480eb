"""Jurisdiction: which subjects a caseworker's office covers, and what a sign-in without a valid region sees.

Pins invariant 1 (deny by default) for tasks limited to the caseworker's region: a region code covers by the
administrative hierarchy (a 시도 office its 시도, a 시군구 office exactly its 시군구), never by a prefix that
happens to match; nationwide access is named explicitly; no region, or a malformed one, sees nothing.
"""
from __future__ import annotations

import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import sample, token_with
from oneScreen import catalog as catalog_mod, jurisdiction, policy
from oneScreen.policy import Caller, Status, Subject, decide
from oneScreen.settings import ROOT
from test_screen import SCREEN, fields_of

CAT = catalog_mod.load(ROOT / "field_catalog.yaml")
POL = policy.load(ROOT / "policies", CAT)
EDGE_REGIONS = ["11200", "11500", "27200", "11000", "27000", "41110", "41117", "11110", "11680", "50110", "51000"]
MALFORMED_REGIONS = [None, "", "1", "11", "1168", "abc", "116800", "1168010", "1168010100", "00000", "00110",
                     " 11680", "11680 ", "１１６８０", "national ", "NATIONAL", 11680, 0, [], {}]


def plainly(region: object, code: object) -> bool:
    """The rule, written out on its own: the property test holds the implementation to it."""
    if region == "national":
        return True
    if not (isinstance(region, str) and re.fullmatch(r"[0-9]{5}", region) and not region.startswith("00")):
        return False  # a caller without a well-formed region covers nothing
    if not (isinstance(code, str) and re.fullmatch(r"[0-9]{5}|[0-9]{10}", code)):
        return False  # nor does anyone cover a subject whose code is missing or malformed
    sigungu = code[:5]  # a 법정동 code belongs to the 시군구 of its first five digits
    if region[2:] == "000":
        return sigungu[:2] == region[:2]  # a 시도 office: its whole 시도
    return sigungu == region  # a 시군구 office: exactly its own 시군구


@pytest.fixture(scope="session")
def demo_codes(demo_master) -> list[str]:
    """Every 법정동 and 시군구 code of the demo ledgers, read from the generated SQLite files."""
    demo = demo_master / "demo"
    codes: set[str] = set()
    for db, sql in (("mois_resident", "SELECT DISTINCT legal_dong_cd FROM resident"),
                    ("molit_building", "SELECT DISTINCT sigunguCd || bjdongCd FROM bldg_title"),
                    ("molit_building", "SELECT DISTINCT sigunguCd FROM bldg_title"),
                    ("molit_land", "SELECT DISTINCT substr(pnu, 1, 10) FROM land")):
        with sqlite3.connect(f"file:{demo / (db + '.sqlite')}?mode=ro", uri=True) as conn:
            codes.update(r[0] for r in conn.execute(sql) if r[0])
    assert len({c[:5] for c in codes}) >= 20  # the demo spans many 시군구 of many 시도
    return sorted(codes)


def test_every_demo_code_is_covered_by_exactly_the_offices_the_hierarchy_names(demo_codes):
    """Invariant 1: over every demo code, its own 시군구 and 시도 offices and the national office cover it, and
    no other 시군구 office of the demo data (nor any edge code) does."""
    sigungu = sorted({c[:5] for c in demo_codes})
    for code in demo_codes:
        covering = [r for r in sigungu + EDGE_REGIONS if jurisdiction.covers(r, code)]
        assert set(covering) == {code[:5]} | ({code[:2] + "000"} & set(EDGE_REGIONS)), code
        assert jurisdiction.covers(code[:2] + "000", code) and jurisdiction.covers("national", code)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_coverage_follows_the_administrative_hierarchy(demo_codes, data):
    """Invariant 1, as a property over the demo's real codes, edge codes and random ones: jurisdiction.covers
    (and the policy decision built on it) is the rule written plainly above."""
    sigungu = sorted({c[:5] for c in demo_codes})
    offices = sigungu + sorted({c[:2] + "000" for c in demo_codes}) + EDGE_REGIONS + ["national"]
    digits = st.text(alphabet="0123456789", min_size=5, max_size=5)
    region = data.draw(st.one_of(st.sampled_from(offices), st.sampled_from(MALFORMED_REGIONS), digits,
                                 digits.map(lambda d: d[:2] + "000")))
    code = data.draw(st.one_of(
        st.sampled_from(demo_codes),
        st.sampled_from(EDGE_REGIONS + sigungu).flatmap(  # another 법정동 of a 시군구 that shares a prefix
            lambda s: st.text(alphabet="0123456789", min_size=5, max_size=5).map(lambda d: s[:3] + d[:2] + d)),
        st.text(alphabet="0123456789", min_size=10, max_size=10),
        st.sampled_from([None, "", "11680", "1168", "116801010", "11680101000", "11680-10100", "１１６８０10100"])))
    expected = plainly(region, code)
    assert jurisdiction.covers(region, code) is expected
    caller = Caller("u", "u", "org", region, frozenset({"welfare_officer"}))  # type: ignore[arg-type]
    assert caller.covers(code) is expected
    d = decide(caller, POL.tasks["basic_livelihood"], "citizen.name", Subject(in_region=caller.covers(code)))
    assert (d.status is Status.OK) is expected


@pytest.mark.parametrize("region,code,covered", [
    ("27200", "2726010800", False),  # 대구 남구 does not see 수성구 (the prefix "272" matched it)
    ("11200", "1121510100", False),  # 성동구 (11200) does not see 광진구 (11215)
    ("11200", "1120010100", True),
    ("11500", "1150010300", True),  # 강서구 sees its own 화곡동
    ("11500", "1153010100", False),  # and not 구로구
    ("27000", "2726010800", True),  # 대구광역시 sees every 대구 district
    ("27000", "2635010500", False),
    ("11000", "1168010100", True),
    ("11000", "4111710500", False),
    ("41110", "4111710500", False),  # 수원시 (41110) is not 영통구 (41117): each 시군구 code stands for itself
    ("00000", "1111010100", False),  # zeros are no nationwide claim
    ("national", "5011025321", True),
])
def test_a_region_covers_by_the_hierarchy_never_by_a_shared_prefix(region, code, covered):
    assert jurisdiction.covers(region, code) is covered


def test_only_the_explicit_national_region_is_nationwide():
    for region in ("00000", "0", "", None, "00"):
        assert not Caller("u", "u", "o", region, frozenset()).national
    assert Caller("u", "u", "o", "national", frozenset()).national


def daegu_suseong(data_dir):
    return sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE legal_dong_cd LIKE '27260%' "
                            "ORDER BY rrn LIMIT 1")[0][0]


async def test_a_district_officer_does_not_read_a_neighbouring_district_that_shares_the_prefix(api, data_dir, sql_log):
    """The issue's case: a 대구 남구 (27200) welfare officer asked for a 수성구 (2726x) resident under a task
    limited to the caseworker's district; every field is denied, and only the region was read."""
    rrn = daegu_suseong(data_dir)
    token = token_with(data_dir, "nam.bokji", ["welfare_officer"], org="대구광역시 남구청", region="27200")
    status, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-27"}, token=token)
    assert status == 200, body
    got = fields_of(body["data"]["screen"])
    assert {f["status"] for f in got.values()} == {"DENIED"}
    assert all(f["value"] is None for f in got.values())
    assert len(sql_log) == 1 and "legal_dong_cd" in sql_log[0].split("--")[0]
    # the 대구광역시 office (a 시도 office) does cover it
    city = token_with(data_dir, "dg.bokji", ["welfare_officer"], org="대구광역시청", region="27000")
    _, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-27"}, token=city)
    assert fields_of(body["data"]["screen"])["citizen.rrn"]["value"] == rrn


def jongno(data_dir):
    return sample(data_dir, "mois_resident:SELECT rrn FROM resident WHERE legal_dong_cd LIKE '11110%' "
                            "ORDER BY rrn LIMIT 1")[0][0]


@pytest.mark.parametrize("region", ["(absent)", None])
async def test_a_sign_in_without_a_region_sees_nothing_of_a_district_task(api, data_dir, sql_log, region):
    """Fail closed: no region claim (absent, or null) is not nationwide. Under a task limited to the
    caseworker's district every field is DENIED with the reason, and no ledger is read at all; the same
    sign-in still performs nationwide tasks."""
    rrn = jongno(data_dir)
    extra = {} if region == "(absent)" else {"region": region}
    token = token_with(data_dir, "no.region", ["welfare_officer", "vehicle_registration_officer"], **extra)
    status, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": rrn, "c": "J-0"}, token=token)
    assert status == 200, body
    got = fields_of(body["data"]["screen"])
    assert {f["status"] for f in got.values()} == {"DENIED"}
    assert all("region" in f["reason"] or "관할" in f["reason"] for f in got.values())
    assert rrn[7:] not in str(body["data"]["screen"]["sections"]) and sql_log == []
    _, body = await api.gql(None, SCREEN, {"t": "vehicle_transfer", "s": rrn, "c": "J-1"}, token=token)
    assert fields_of(body["data"]["screen"])["citizen.name"]["status"] == "OK"
    _, body = await api.gql(None, "{ me { region } }", token=token)
    assert body["data"]["me"]["region"] is None


@pytest.mark.parametrize("region", ["", "1", "abc", "1111010", "00000", "1111010100", 11110, "１１１１０", ["11110"]])
async def test_a_malformed_region_claim_is_refused_at_sign_in(api, data_dir, region):
    """A present region claim must be 'national' or a five-digit region code: anything else is a 401 that says
    what is wrong (and never repeats the claim), before any task is looked at."""
    token = token_with(data_dir, "bad.region", ["welfare_officer"], region=region)
    status, body = await api.gql(None, SCREEN, {"t": "basic_livelihood", "s": jongno(data_dir), "c": "J-2"},
                                 token=token)
    assert status == 401
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "region" in error["message"] and "national" in error["message"]
    if region not in ("", 11110):
        assert str(region) not in error["message"]


def test_the_demo_users_regions_are_well_formed():
    from oneScreen.identity import demo_users
    for u in demo_users():
        assert u.region is None or jurisdiction.problem(u.region) is None, u.user
