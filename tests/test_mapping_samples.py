"""Sample values beside each column when mapping: shown as they are only for columns that feed open (public or
internal, no personal data) fields; masked otherwise, and always while no field maps a column; never logged."""
from __future__ import annotations

import logging
import re

from conftest import sample
from test_admin import admin_api  # noqa: F401 - the fixture

COLUMNS = """query($l: ID!) { ledgerColumns(ledger: $l) { name fields samples } }"""


async def columns(api, ledger: str) -> dict[str, list[str]]:
    _, body = await api.gql("han.catalog", COLUMNS, {"l": ledger})
    assert "errors" not in body, body
    return {c["name"]: c["samples"] for c in body["data"]["ledgerColumns"]}


async def test_mapping_shows_samples_masked_for_personal_columns_and_never_logs_them(admin_api, data_dir, caplog):
    api = await admin_api()
    with caplog.at_level(logging.DEBUG):
        resident = await columns(api, "mois.resident")
        land = await columns(api, "molit.land")
        dependants = await columns(api, "nhis.dependants")
    rows = sample(data_dir, "mois_resident:SELECT rrn, name, mbl_telno FROM resident")
    assert len(resident["rrn"]) == 3
    assert all(re.fullmatch(r"\d{6}-\d\*{6}", v) for v in resident["rrn"])  # the field's own strategy (rrn)
    assert all(re.fullmatch(r".\*+", v) for v in resident["name"])  # personal, no strategy: its shape
    assert all(re.fullmatch(r"0\*\*-\*{4}-\*{4}", v) for v in resident["mbl_telno"])
    prices = {str(r[0]) for r in sample(data_dir, "molit_land:SELECT pblntfPclnd FROM land")}
    assert len(land["pblntfPclnd"]) == 3 and set(land["pblntfPclnd"]) <= prices  # public: as it is
    assert all(re.fullmatch(r"\d\*{5}-\*{7}", v) for v in dependants["insurer_rrn"])  # unmapped: masked
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for r in rows:
        for secret in (r["rrn"], r["mbl_telno"]):
            assert not secret or secret not in logged
    _, body = await api.gql("kim.jumin", COLUMNS, {"l": "mois.resident"})
    assert body["errors"][0]["extensions"]["code"] == "ADMIN_FORBIDDEN"
