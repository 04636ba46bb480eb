"""The demo ledger generator: byte-identical output, documented sizes and consistency between the six SQLite files."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from oneScreen.demo import ledgers

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_COLUMNS = {
    ("mois_resident", "resident"): "rrn name birth_date sex road_addr legal_dong_cd mvin_de hshld_id hshld_rel "
                                   "mbl_telno mgm_bldrgst_pk",
    ("court_family", "family_relation"): "rrn rel_type rel_rrn rel_name rel_birth_date",
    ("molit_building", "bldg_title"): "mgmBldrgstPk platPlc newPlatPlc sigunguCd bjdongCd bun ji bldNm mainPurpsCdNm "
                                      "strctCdNm platArea archArea totArea bcRat vlRat grndFlrCnt ugrndFlrCnt hhldCnt "
                                      "useAprDay pnu",
    ("molit_building", "bldg_owner"): "mgmBldrgstPk owner_rrn owner_name share own_chg_de",
    ("molit_land", "land"): "pnu ldCodeNm lndcgrCodeNm lndpclAr pblntfPclnd owner_rrn owner_name ownshipChgDe",
    ("molit_vehicle", "vehicle"): "vhrNo owner_rrn cnm vhctyAsortNm prye dsplvl frstRegistDe vin",
    ("nhis_eligibility", "eligibility"): "rrn insured_type acqs_de mthly_prm workplace_nm insurer_rrn dependant_cnt",
    ("nhis_eligibility", "dependant"): "insurer_rrn dep_rrn dep_name dep_rel",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    return ledgers.generate(tmp_path_factory.mktemp("demo"))


def rows(path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        return con.execute(sql).fetchall()


def column(path: Path, sql: str) -> list:
    return [r[0] for r in rows(path, sql)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rrn_is_valid(rrn: str) -> bool:
    digits = rrn.replace("-", "")
    if len(rrn) != 14 or rrn[6] != "-" or not digits.isdigit():
        return False
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    return (11 - sum(int(d) * w for d, w in zip(digits, weights)) % 11) % 10 == int(digits[12])


def test_demo_ledgers_are_byte_identical_across_generations(tmp_path):
    first = ledgers.generate(tmp_path / "a")
    # The second run is another interpreter with another str-hash seed, so set ordering cannot leak into the output.
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONHASHSEED="4242", PYTHONPATH=path)
    code = "import sys, pathlib; from oneScreen.demo import ledgers; ledgers.generate(pathlib.Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, env=env, cwd=ROOT)
    for name, file_name in ledgers.LEDGER_FILES.items():
        assert sha256(first[name]) == sha256(tmp_path / "b" / file_name), name
    # No temp or journal files are left behind: only the six ledgers and the stamp.
    expected = [*ledgers.LEDGER_FILES.values(), ".demo-version"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(expected)


def test_another_seed_gives_other_data(tmp_path, demo):
    other = ledgers.generate(tmp_path, seed=7)
    assert sha256(other["mois_resident"]) != sha256(demo["mois_resident"])
    assert not (tmp_path / ".demo-version").exists()  # the stamp only vouches for the default demo seed


def test_demo_ledgers_meet_the_documented_sizes(demo):
    assert set(demo) == set(ledgers.LEDGER_FILES) == {
        "mois_resident", "court_family", "molit_building", "molit_land", "molit_vehicle", "nhis_eligibility"}
    assert all(p.is_file() and p.name == ledgers.LEDGER_FILES[n] for n, p in demo.items())
    for (ledger, table), names in EXPECTED_COLUMNS.items():
        assert column(demo[ledger], f"SELECT name FROM pragma_table_info('{table}')") == names.split(), table
    residents = rows(demo["mois_resident"], "SELECT count(*) FROM resident")[0][0]
    buildings = rows(demo["molit_building"], "SELECT count(*) FROM bldg_title")[0][0]
    parcels = rows(demo["molit_land"], "SELECT count(*) FROM land")[0][0]
    insured = rows(demo["nhis_eligibility"], "SELECT count(*) FROM eligibility")[0][0]
    assert residents >= 5000 and buildings >= 2000
    assert parcels >= buildings + 1000
    assert 0.97 * residents <= insured < residents  # ~1% of residents have no health-insurance row
    assert rows(demo["molit_vehicle"], "SELECT count(*) FROM vehicle")[0][0] > 1000
    indexes = {ledger: set(column(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
               for ledger, path in demo.items()}
    assert indexes == {
        "mois_resident": {"ix_resident_hshld", "ix_resident_name_birth", "ix_resident_bldg"},
        "court_family": {"ix_family_rrn"},
        "molit_building": {"ix_bldg_pnu", "ix_bldg_newplatplc", "ix_bldg_owner_rrn"},
        "molit_land": {"ix_land_owner_rrn"},
        "molit_vehicle": {"ix_vehicle_owner"},
        "nhis_eligibility": {"ix_dependant_insurer"},
    }


def test_links_resolve_between_demo_ledgers(demo):
    people = rows(demo["mois_resident"], "SELECT rrn, name, birth_date, sex, road_addr, legal_dong_cd, mvin_de, "
                                         "mgm_bldrgst_pk FROM resident")
    titles = {r[0]: r for r in rows(demo["molit_building"], "SELECT mgmBldrgstPk, sigunguCd || bjdongCd, newPlatPlc, "
                                                            "pnu, mainPurpsCdNm FROM bldg_title")}
    parcels = set(column(demo["molit_land"], "SELECT pnu FROM land"))
    rrns = {p[0] for p in people}
    assert len({(p[1], p[2]) for p in people}) == len(people)  # name + birth date finds one person
    for rrn, _, birth, sex, road_addr, dong_cd, mvin, pk in people:
        assert rrn_is_valid(rrn), rrn
        g = int(rrn[7])
        assert birth[2:4] + birth[5:7] + birth[8:10] == rrn[:6]
        assert (g in (1, 2)) == (birth < "2000") and sex == ("남" if g % 2 else "여")
        assert pk in titles and dong_cd == titles[pk][1] and mvin >= birth
        assert titles[pk][4] in ("단독주택", "다가구주택", "다세대주택", "아파트", "연립주택")
        _, _, new_plat, _, _ = titles[pk]
        assert road_addr == new_plat or road_addr.startswith(new_plat.split(" (")[0] + ", ")
    assert all(t[3] in parcels for t in titles.values())
    owners = rows(demo["molit_building"], "SELECT mgmBldrgstPk, owner_rrn FROM bldg_owner")
    assert {pk for pk, _ in owners} == set(titles)  # every building has at least one owner
    companies = {o for _, o in owners if o not in rrns}
    assert companies and all(len(c) == 14 and c[6] == "-" for c in companies)
    land_owners = set(column(demo["molit_land"], "SELECT owner_rrn FROM land"))
    assert len(land_owners & rrns) > 500 and land_owners - rrns <= companies
    assert set(column(demo["molit_vehicle"], "SELECT owner_rrn FROM vehicle")) <= rrns
    elig = {r[0]: r for r in rows(demo["nhis_eligibility"], "SELECT rrn, insured_type, insurer_rrn, dependant_cnt "
                                                            "FROM eligibility")}
    deps = rows(demo["nhis_eligibility"], "SELECT insurer_rrn, dep_rrn FROM dependant")
    assert set(elig) <= rrns
    for insurer, dep in deps:
        assert elig[insurer][1] == "직장가입자" and elig[dep][1] == "피부양자" and elig[dep][2] == insurer
    assert all(r[3] == sum(1 for i, _ in deps if i == r[0]) for r in elig.values())
    assert sum(1 for r in elig.values() if r[1] == "피부양자") == len(deps)


def test_family_relations_are_symmetric(demo):
    sex = dict(rows(demo["mois_resident"], "SELECT rrn, sex FROM resident"))
    relations = rows(demo["court_family"], "SELECT rrn, rel_type, rel_rrn FROM family_relation")
    present = set(relations)
    inverse = {"배우자": lambda a: "배우자", "자녀": lambda a: "부" if sex[a] == "남" else "모",
               "부": lambda a: "자녀", "모": lambda a: "자녀"}
    among_residents = [(a, rel, b) for a, rel, b in relations if b in sex]
    assert all(a in sex for a, _, _ in relations)
    for a, rel, b in among_residents:
        assert (b, inverse[rel](a), a) in present, (a, rel, b)
    for a, rel, b in among_residents:  # a parent has the right sex for the relation
        assert rel not in ("부", "모") or sex[b] == ("남" if rel == "부" else "여")
    assert len(relations) - len(among_residents) <= 0.05 * len(relations)
    household = dict(rows(demo["mois_resident"], "SELECT rrn, hshld_id FROM resident"))
    assert any(household[a] != household[b] for a, rel, b in among_residents if rel == "자녀")


def test_ensure_does_not_regenerate_when_current(tmp_path):
    paths = ledgers.ensure(tmp_path)
    before = {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in paths.items()}
    assert ledgers.ensure(tmp_path) == paths
    assert {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in paths.items()} == before


def test_ensure_regenerates_when_a_file_is_missing_or_the_stamp_is_stale(tmp_path):
    paths = ledgers.ensure(tmp_path)
    digest = sha256(paths["molit_land"])
    paths["molit_land"].unlink()
    assert ledgers.ensure(tmp_path) == paths
    assert sha256(paths["molit_land"]) == digest
    inode = paths["mois_resident"].stat().st_ino
    (tmp_path / ".demo-version").write_text("0\n")
    ledgers.ensure(tmp_path)
    assert paths["mois_resident"].stat().st_ino != inode  # rewritten through a temp file + os.replace
    assert (tmp_path / ".demo-version").read_text().strip() == ledgers.GENERATOR_VERSION


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "x.sqlite"
    target.write_bytes(b"previous")
    ddl = ("CREATE TABLE t (a INTEGER, b TEXT)",)
    with pytest.raises(sqlite3.Error):  # the second row has the wrong arity: the insert fails mid-way
        ledgers._write_sqlite(target, ddl, [("t", [(1, "one"), (2,)])])
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.sqlite"]
