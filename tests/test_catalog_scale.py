"""The admin pages at catalog scale: the catalog, task list and field picker are searched and paged on the server
(a bounded page, found by a Korean label, an over-limit request refused before any work), and two configuration
versions are compared with the CLI's own diff. A real app over the demo catalog grown by generated ledgers."""
from __future__ import annotations

from pathlib import Path

import pytest

GEN_LEDGERS = 10


def grow_catalog(catalog_copy: Path, n_fields: int, ledgers: int = GEN_LEDGERS) -> str:
    """Add `ledgers` generated citizen ledgers with n_fields fields in all to the demo catalog; returns the id of
    the one field labelled "국민연금 가입기간" (the needle a search has to find)."""
    path = catalog_copy / "field_catalog.yaml"
    text = path.read_text(encoding="utf-8")
    led = "".join(f"  - {{id: gen.ledger_{i:03d}, agency: MOIS, name: 생성 대장 {i}, name_en: Generated ledger {i}, "
                  f"subject: citizen, key_column: rrn, cache_ttl: 30, connector: {{kind: sql, dsn_env: "
                  f"ONESCREEN_DSN_MOIS_RESIDENT, demo_file: mois_resident.sqlite, table: resident}}}}\n"
                  for i in range(ledgers))
    per = n_fields // ledgers
    needle = f"citizen.gen{ledgers - 1:03d}_f{per - 7:05d}"
    fields = []
    for i in range(ledgers):
        for j in range(per):
            fid = f"citizen.gen{i:03d}_f{j:05d}"
            label, label_en = (("국민연금 가입기간", "National pension enrolment period") if fid == needle
                               else (f"생성 항목 {i}-{j}", f"Generated item {i}-{j}"))
            fields.append(f"  - {{id: {fid}, ledger: gen.ledger_{i:03d}, column: c{j:05d}, type: string, "
                          f"sensitivity: {'personal' if j % 3 else 'internal'}, label: {label}, label_en: {label_en}}}\n")
    text = text.replace("\nledgers:\n", "\nledgers:\n" + led, 1).replace("\nfields:\n", "\nfields:\n" + "".join(fields), 1)
    path.write_text(text, encoding="utf-8")
    return needle


@pytest.fixture
async def big(make_app, catalog_copy, data_dir):
    import httpx
    from conftest import Api
    needle = grow_catalog(catalog_copy, 5000)
    app = make_app(ONESCREEN_CATALOG=str(catalog_copy / "field_catalog.yaml"),
                   ONESCREEN_POLICIES=str(catalog_copy / "policies"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        api = Api(client, data_dir, app)
        api.needle = needle
        yield api
    await app.state.runtime.close()


def auth(api, user: str = "han.catalog") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token(user)}"}


async def test_the_field_search_answers_one_bounded_page_and_finds_a_field_by_its_korean_label(big):
    r = await big.client.get("/admin/catalog/fields?limit=100", headers=auth(big))
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["fields"]) == 100 and body["total"] == body["all"] > 5000  # one page, not the catalog
    nxt = (await big.client.get("/admin/catalog/fields?limit=100&offset=100", headers=auth(big))).json()
    assert {f["id"] for f in nxt["fields"]}.isdisjoint(f["id"] for f in body["fields"])

    found = (await big.client.get("/admin/catalog/fields", params={"q": "국민연금 가입"}, headers=auth(big))).json()
    assert [f["id"] for f in found["fields"]] == [big.needle] and found["total"] == 1
    assert found["fields"][0]["label"] == "국민연금 가입기간" and found["fields"][0]["ledger"] == "gen.ledger_009"
    by_en = (await big.client.get("/admin/catalog/fields", params={"q": "pension enrolment"}, headers=auth(big))).json()
    assert [f["id"] for f in by_en["fields"]] == [big.needle]
    by_ledger = (await big.client.get("/admin/catalog/fields", params={"ledger": "gen.ledger_003", "limit": "200"},
                                      headers=auth(big))).json()
    assert by_ledger["total"] == 500 and {f["ledger"] for f in by_ledger["fields"]} == {"gen.ledger_003"}
    rrn = (await big.client.get("/admin/catalog/fields", params={"q": "주민등록번호", "agency": "MOIS"},
                                headers=auth(big))).json()
    assert "citizen.rrn" in [f["id"] for f in rrn["fields"]]
    assert "move_in_report" in next(f for f in rrn["fields"] if f["id"] == "citizen.rrn")["usedBy"]

    assert (await big.client.get("/admin/catalog/fields?q=x", headers=auth(big, "kim.jumin"))).status_code == 403
    assert (await big.client.get("/admin/catalog/fields?q=x")).status_code == 401


async def test_an_over_limit_request_is_refused_with_a_clear_400_before_any_search(big, monkeypatch):
    from oneScreen import catalog_pages

    def no_work(*a, **kw):
        raise AssertionError("the search ran for a refused request")
    monkeypatch.setattr(catalog_pages, "index", no_work)
    for path in ("/admin/catalog/fields?limit=100000", "/admin/catalog/tasks?limit=201",
                 "/admin/catalog/picker?subject=citizen&limit=0", "/admin/catalog/fields?offset=-1"):
        r = await big.client.get(path, headers=auth(big))
        assert r.status_code == 400, (path, r.text)
        assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "limit must be 1..200" in (await big.client.get("/admin/catalog/fields?limit=5000",
                                                           headers=auth(big))).json()["errors"][0]["message"]


async def test_the_picker_and_the_task_list_search_on_the_server(big):
    r = await big.client.get("/admin/catalog/picker", params={"subject": "citizen", "q": "국민연금 가입기간"},
                             headers=auth(big))
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [big.needle]
    page = (await big.client.get("/admin/catalog/picker", params={"subject": "citizen", "limit": "20"},
                                 headers=auth(big))).json()
    assert len(page["items"]) == 20 and page["total"] > 5000
    via = (await big.client.get("/admin/catalog/picker", params={"subject": "citizen", "q": "주용도"},
                                headers=auth(big))).json()
    assert "citizen.residence>building.main_purpose" in [i["id"] for i in via["items"]]

    tasks = (await big.client.get("/admin/catalog/tasks", params={"q": "전입"}, headers=auth(big))).json()
    assert "move_in_report" in [t["code"] for t in tasks["tasks"]]
    one = (await big.client.get("/admin/catalog/tasks", params={"code": "move_in_report"}, headers=auth(big))).json()
    assert one["tasks"][0]["code"] == "move_in_report" and one["tasks"][0]["sections"][0]["fields"]
    assert "legalBasis" in one["tasks"][0] and one["tasks"][0]["yaml"].startswith("code: move_in_report") or \
        "move_in_report" in one["tasks"][0]["yaml"]


async def test_two_versions_compare_in_the_admin_api_with_the_clis_diff(big, catalog_copy):
    task = catalog_copy / "policies" / "tasks" / "move_in_report.yaml"
    text = task.read_text(encoding="utf-8")
    assert "citizen.birth_date" in text
    new = text.replace("citizen.birth_date", big.needle, 1)
    status, body = await big.gql("oh.samu", "mutation($c: ID!, $y: String!) { proposeTask(code: $c, yaml: $y) { id } }",
                                 {"c": "move_in_report", "y": new})
    assert status == 200 and "errors" not in body, body
    change = body["data"]["proposeTask"]["id"]
    status, body = await big.gql("kang.samu", "mutation($id: ID!) { approveChange(id: $id) { status } }", {"id": change})
    assert body["data"]["approveChange"]["status"] == "applied", body
    r = await big.client.get(f"/admin/versions/diff?from=before-{change}&to=current", headers=auth(big, "kang.samu"))
    assert r.status_code == 200, r.text
    tasks = r.json()["tasks"]
    assert [t["code"] for t in tasks] == ["move_in_report"]
    assert f"+ {big.needle} (allow)" in tasks[0]["lines"] and "- citizen.birth_date" in tasks[0]["lines"]
    back = (await big.client.get(f"/admin/versions/diff?from=after-{change}&to=before-{change}",
                                 headers=auth(big, "kang.samu"))).json()
    assert "- " + big.needle in back["tasks"][0]["lines"]
    assert (await big.client.get(f"/admin/versions/diff?from=after-{change}&to=current",
                                 headers=auth(big, "kang.samu"))).json()["tasks"] == []
    bad = await big.client.get("/admin/versions/diff?from=yesterday", headers=auth(big, "kang.samu"))
    assert bad.status_code == 422 and "before-N" in bad.text
