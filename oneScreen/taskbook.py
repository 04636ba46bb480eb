"""The task spreadsheet (사무 목록): template, export and import of task definitions as .xlsx or .csv.

openpyxl writes the workbooks; read_xlsx streams the one sheet an import reads (see its docstring).

One sheet `사무`, one header row in Korean (COLUMNS), then either one row per (task, field) or one row per
task with the items in one cell (newline, comma or semicolon between them). Items and roles are named by id
or by their Korean label (a label must name one field of the subject type, or one role). Task columns may
be left blank on a task's later rows; a blank 구역 continues the row above's section.

Owns invariant 8 on the import side: a spreadsheet is validated as a whole, as the loaders and `policy lint`
validate the files, and every problem comes back as `FILE:SHEET:ROW:COLUMN: reason`, all at once; nothing
is proposed while any row is in error. A valid import is ONE change (changes.py, four eyes when it widens
access). Export writes what an import reads: a round trip changes nothing. Keys a task file has and the sheet
has no column for (consent_valid_days, deferred_disclosure, receipt_case_ref) are kept from the running task.
"""
from __future__ import annotations

import csv
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Mapping
from xml.parsers import expat

import yaml

from . import catalog as catalog_mod, configstore, policy as policy_mod
from .catalog import Catalog, Field, check_mask
from .changes import FileChange
from .errors import ConfigError, ConfigErrors, OneScreenError, counted
from .policy import CASE_REF_PATTERN, Policies
from .reports import TaskChange, mask_text, same_task, task_diff

SHEET = "사무"
# (key, Korean header, what goes in it): the documented layout, in the template's order
COLUMNS = (
    ("code", "사무코드", "task code: lower-case letters, digits and _ (e.g. move_in_report)"),
    ("name", "사무명", "task name in Korean"),
    ("name_en", "사무명(영문)", "task name in English"),
    ("legal_basis", "근거 법령", "the provision that grants the task its data"),
    ("legal_basis_en", "근거 법령(영문)", "the same in English"),
    ("subject", "대상 유형", "subject type: id (citizen) or label (국민)"),
    ("roles", "담당 역할", "roles that perform it: ids or labels, separated by commas"),
    ("jurisdiction", "관할", "national (전국, default) or own_region (관할 구역)"),
    ("case_ref_example", "접수번호 예시", "optional: an example case reference"),
    ("subjects_per_request", "요청당 대상 수", "optional: subjects one request may look up (default 1)"),
    ("section", "구역", "section title in Korean (blank: the section of the row above)"),
    ("section_en", "구역(영문)", "section title in English"),
    ("fields", "필요 정보 항목", "field paths by catalog id or label, e.g. citizen.residence > building.main_purpose; "
                              "several in one cell: one a line (or separated by commas)"),
    ("mask", "마스킹", "optional: mask strategy for this task (name, rrn, ...; a record: col=strategy, ...)"),
    ("full_value_basis", "전체값 근거", "optional: the provision that grants the full (unmasked) value"),
    ("consent", "동의 필요", "예/Y if the subject must consent first, blank otherwise"),
)
HEADERS = {h: k for k, h, _ in COLUMNS}
HEADER_OF = {k: h for k, h, _ in COLUMNS}
TASK_KEYS = ("name", "name_en", "legal_basis", "legal_basis_en", "subject", "roles", "jurisdiction",
             "case_ref_example", "subjects_per_request")
REQUIRED = ("code", "name", "name_en", "legal_basis", "legal_basis_en", "subject", "roles", "fields")
JURISDICTION = {"national": "national", "전국": "national", "own_region": "own_region", "관할 구역": "own_region",
                "관할구역": "own_region"}
YES = {"예", "y", "yes", "true", "1", "o", "○", "동의"}
NO = {"", "아니오", "n", "no", "false", "0", "x"}
_SPLIT = re.compile(r"[\n,;]+")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_ROWS = 200_000


@dataclass(frozen=True)
class Problem:
    file: str
    sheet: str
    row: int
    column: str  # the Korean header of the column
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.sheet}:{self.row}:{self.column}: {self.reason}"


class ImportInvalid(OneScreenError):
    code = "IMPORT_INVALID"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{counted(len(problems), 'problem')} in the spreadsheet; nothing was proposed:\n"
                         + "\n".join(map(str, problems)))


# ---------------------------------------------------------------- reading and writing the files


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "예" if v else ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_rows(path: Path, name: str | None = None) -> tuple[str, list[tuple[int, dict[str, str]]], list[Problem]]:
    """(sheet name, [(row number, {column key: text})], header problems) of a .xlsx or .csv file.

    `name` is how problems name the file (default: the path as given)."""
    path = Path(path)
    shown = name or str(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        sheet = "-"
        with open(path, newline="", encoding="utf-8-sig") as fh:
            raw = [list(r) for r in csv.reader(fh)]
    elif suffix in (".xlsx", ".xlsm"):
        try:
            sheet, raw = read_xlsx(path)
        except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile, expat.ExpatError) as exc:
            # a damaged or foreign file: say so, never a traceback
            raise ImportInvalid([Problem(shown, "-", 0, "-", f"not a readable .xlsx workbook ({exc})")]) from None
    else:
        raise ImportInvalid([Problem(shown, "-", 0, "-", "the task spreadsheet must be a .xlsx or .csv file")])
    if not raw:
        return sheet, [], [Problem(shown, sheet, 1, "-", "the sheet is empty: the first row must hold the headers")]
    header = [_cell(h) for h in raw[0]]
    problems = []
    keys: list[str | None] = []
    for i, h in enumerate(header):
        k = HEADERS.get(h) or (h if h in HEADER_OF else None)
        if h and k is None:
            problems.append(Problem(shown, sheet, 1, h, f"unknown column (the columns are: {', '.join(HEADERS)})"))
        keys.append(k)
    for k in ("code", "fields"):
        if k not in keys:
            problems.append(Problem(shown, sheet, 1, HEADER_OF[k], "this column is missing"))
    rows = []
    for n, r in enumerate(raw[1:], start=2):
        values = {k: _cell(v) for k, v in zip(keys, r) if k is not None}
        if any(values.values()):
            rows.append((n, values))
    return sheet, rows, problems


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
MAX_UNZIPPED = 256 * 1024 * 1024  # bytes a workbook may unpack to (a 16 MiB upload could be a zip bomb)


def _xml(data: bytes, start, end=None, text=None) -> None:
    """Stream `data` through expat (namespaces resolved as "URI name"), refusing any DOCTYPE (entities)."""
    p = expat.ParserCreate(namespace_separator=" ")

    def doctype(*_a: object) -> None:
        raise ValueError("the workbook's XML declares a DOCTYPE, which a workbook never needs")

    p.StartDoctypeDeclHandler = doctype
    p.StartElementHandler = start
    if end is not None:
        p.EndElementHandler = end
    if text is not None:
        p.CharacterDataHandler = text
    p.Parse(data, True)


def read_xlsx(path: Path) -> tuple[str, list[list[str]]]:
    """(sheet title, rows of cell texts) of the sheet `사무` of a workbook (else its first sheet).

    A streaming read of the sheet's XML (shared and inline strings, numbers, booleans, cached formula values):
    openpyxl's reader, which builds an object per inline string, took 6-8 s for a 405-task sheet of 12,000 rows
    (the sheets openpyxl itself writes hold inline strings); this takes under a second (bench tasks)."""
    with zipfile.ZipFile(path) as z:
        if sum(i.file_size for i in z.infolist()) > MAX_UNZIPPED:
            raise ValueError(f"it unpacks to more than {MAX_UNZIPPED // 2**20} MiB")
        sheets: list[tuple[str, str]] = []
        _xml(z.read("xl/workbook.xml"), lambda tag, a: sheets.append((a["name"], a[f"{_REL} id"]))
             if tag == f"{_MAIN} sheet" else None)
        targets: dict[str, str] = {}
        _xml(z.read("xl/_rels/workbook.xml.rels"), lambda tag, a: targets.__setitem__(a["Id"], a["Target"])
             if tag == f"{_PKG} Relationship" else None)
        title, rid = next(((n, r) for n, r in sheets if n == SHEET), sheets[0])
        target = targets[rid]
        part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            buf: list[str] = []
            state = {"in_t": False}

            def s_start(tag: str, _a: dict) -> None:
                if tag == f"{_MAIN} si":
                    buf.clear()
                state["in_t"] = tag == f"{_MAIN} t"

            def s_end(tag: str) -> None:
                if tag == f"{_MAIN} si":
                    shared.append("".join(buf))
                state["in_t"] = False

            _xml(z.read("xl/sharedStrings.xml"), s_start, s_end,
                 lambda t: buf.append(t) if state["in_t"] else None)
        rows: list[list[str]] = []
        cur: dict = {"row": None, "col": 0, "type": "n", "text": [], "grab": False, "rows": 0}

        def start(tag: str, a: dict) -> None:
            name = tag.rsplit(" ", 1)[-1]
            if name == "row":
                n = int(a["r"]) if "r" in a else len(rows) + 1
                if n > MAX_ROWS + 2:
                    raise _Enough()
                while len(rows) < n:
                    rows.append([])
                cur["row"] = rows[n - 1]
            elif name == "c":
                ref = a.get("r")
                cur["col"] = _column(ref) if ref else len(cur["row"])
                cur["type"], cur["text"] = a.get("t", "n"), []
            elif name in ("v", "t"):
                cur["grab"] = True

        def end(tag: str) -> None:
            name = tag.rsplit(" ", 1)[-1]
            if name in ("v", "t"):
                cur["grab"] = False
            elif name == "c":
                text = "".join(cur["text"])
                kind = cur["type"]
                if kind == "s":
                    text = shared[int(text)] if text else ""
                elif kind == "b":
                    text = "예" if text == "1" else ""
                elif kind == "n" and text:
                    text = _cell(float(text)) if ("." in text or "E" in text) else text
                row = cur["row"]
                while len(row) <= cur["col"]:
                    row.append("")
                row[cur["col"]] = text.strip()

        try:
            _xml(z.read(part), start, end, lambda t: cur["text"].append(t) if cur["grab"] else None)
        except _Enough:
            pass
    return title, rows


class _Enough(Exception):
    """The sheet has more rows than an import reads: stop parsing (plan() reports it)."""


def _column(ref: str) -> int:
    n = 0
    for ch in ref:
        if not ch.isalpha():
            break
        n = n * 26 + (ord(ch.upper()) - 64)
    return n - 1


def _write(path: Path, rows: list[list[str]]) -> None:
    path = Path(path)
    header = [h for _k, h, _ in COLUMNS]
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8-sig") as fh:  # the BOM: Excel opens it as UTF-8
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        return
    if path.suffix.lower() != ".xlsx":
        raise ImportInvalid([Problem(str(path), "-", 0, "-", "the task spreadsheet must be a .xlsx or .csv file")])
    import openpyxl
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(header)
    for cell, (_k, _h, help_text) in zip(ws[1], COLUMNS):
        cell.font = Font(bold=True)
        cell.comment = Comment(help_text, "oneScreen")
    for r in rows:
        ws.append(r)
    ws.freeze_panes = "B2"
    wb.save(path)


def write_template(path: Path) -> None:
    """An empty spreadsheet with the headers (each with its help as a cell comment in .xlsx)."""
    _write(path, [])


def export_rows(pol: Policies) -> list[list[str]]:
    """One row per (task, field), task columns on every row: what `import_plan` reads back to the same tasks."""
    rows = []
    for code in sorted(pol.tasks):
        t = pol.tasks[code]
        for s in t.sections:
            for tf in s.fields:
                default = tf.target.mask
                mask = "" if tf.mask == default else mask_text(tf.mask)
                values = {"code": code, "name": t.name, "name_en": t.name_en, "legal_basis": t.legal_basis,
                          "legal_basis_en": t.legal_basis_en, "subject": t.subject,
                          "roles": ", ".join(sorted(t.roles)), "jurisdiction": t.jurisdiction,
                          "case_ref_example": t.case_ref_example or "",
                          "subjects_per_request": str(t.subjects_per_request), "section": s.title,
                          "section_en": s.title_en, "fields": " > ".join(f.id for f in tf.path), "mask": mask,
                          "full_value_basis": tf.full_value_basis or "", "consent": "예" if tf.consent else ""}
                rows.append([values[k] for k, _h, _ in COLUMNS])
    return rows


def export(pol: Policies, path: Path) -> int:
    """Write the tasks of `pol` to `path`; returns the number of rows."""
    rows = export_rows(pol)
    _write(path, rows)
    return len(rows)


# ---------------------------------------------------------------- from rows to task files


@dataclass
class _Draft:
    code: str
    first_row: int
    values: dict[str, tuple[str, int]] = dc_field(default_factory=dict)  # key -> (text, row it came from)
    sections: list[dict[str, Any]] = dc_field(default_factory=list)  # {title, title_en, row, fields: [...]}


def _resolver(cat: Catalog) -> dict[str, dict[str, list[Field]]]:
    by_label: dict[str, dict[str, list[Field]]] = {}
    for f in cat.fields.values():
        by_label.setdefault(f.subject, {}).setdefault(f.label.strip(), []).append(f)
    return by_label


def resolve_item(cat: Catalog, labels: Mapping[str, Mapping[str, list[Field]]], subject: str,
                 text: str) -> tuple[tuple[Field, ...] | None, str | None]:
    """A field path named by ids or Korean labels, segment by segment from `subject`: (path, None) or (None, why)."""
    out: list[Field] = []
    current = subject
    parts = [p.strip() for p in text.split(">")]
    for i, part in enumerate(parts):
        f = cat.fields.get(part)
        if f is None or f.subject != current:
            found = labels.get(current, {}).get(part, [])
            if not found:
                st = cat.subject_types.get(current)
                return None, (f"unknown item {part!r}: no field of {st.label if st else current} ({current}) "
                              "has that id or label")
            if len(found) > 1:
                return None, (f"ambiguous label {part!r}: it names {len(found)} fields of {current} "
                              f"({', '.join(sorted(x.id for x in found))}); give the catalog id")
            f = found[0]
        if i < len(parts) - 1:
            if not f.is_link:
                return None, f"item {text!r}: {f.id} is not a link, so nothing can follow it"
            current = f.target
        elif f.is_link:
            return None, f"item {text!r} ends in a link; name the field of {f.target} to show"
        out.append(f)
    return tuple(out), None


def _mask(text: str) -> str | dict[str, str] | None:
    if not text:
        return None
    if "=" not in text and ":" not in text:
        return text.strip()
    out = {}
    for part in _SPLIT.split(text.strip().strip("{}")):
        if part.strip():
            k, _, v = part.replace(":", "=").partition("=")
            out[k.strip()] = v.strip()
    return out


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON strings are YAML


@dataclass
class _Emitted:
    text: str
    lines: dict[int, tuple[int, str]]  # YAML line -> (spreadsheet row, column key)


def _emit(d: _Draft, sections: list[dict[str, Any]]) -> _Emitted:
    lines: list[str] = []
    where: dict[int, tuple[int, str]] = {}

    def put(text: str, row: int, key: str) -> None:
        lines.append(text)
        where[len(lines)] = (row, key)

    v = d.values
    put(f"code: {d.code}", d.first_row, "code")
    for key in ("name", "name_en", "legal_basis", "legal_basis_en"):
        put(f"{key}: {_q(v[key][0])}", v[key][1], key)
    put(f"subject: {v['subject'][0]}", v["subject"][1], "subject")
    put(f"roles: [{', '.join(v['roles'][0].split(','))}]", v["roles"][1], "roles")
    if v.get("jurisdiction", ("national",))[0] != "national":
        put(f"jurisdiction: {v['jurisdiction'][0]}", v["jurisdiction"][1], "jurisdiction")
    if v.get("case_ref_example", ("",))[0]:
        put(f"case_ref_example: {_q(v['case_ref_example'][0])}", v["case_ref_example"][1], "case_ref_example")
    if v.get("subjects_per_request", ("1",))[0] != "1":
        put(f"subjects_per_request: {v['subjects_per_request'][0]}", v["subjects_per_request"][1],
            "subjects_per_request")
    put("sections:", d.first_row, "section")
    for s in sections:
        put(f"  - title: {_q(s['title'])}", s["row"], "section")
        put(f"    title_en: {_q(s['title_en'])}", s["row"], "section_en")
        put("    fields:", s["row"], "fields")
        for item in s["fields"]:
            path = " > ".join(f.id for f in item["path"])
            row = item["row"]
            if item["mask"] is None and not item["basis"] and not item["consent"]:
                put(f"      - {path}", row, "fields")
                continue
            put(f"      - field: {path}", row, "fields")
            if item["mask"] is not None:
                m = item["mask"]
                put(f"        mask: {m if isinstance(m, str) else json.dumps(m, ensure_ascii=False)}", row, "mask")
            if item["basis"]:
                put(f"        full_value_basis: {_q(item['basis'])}", row, "full_value_basis")
            if item["consent"]:
                put("        consent: true", row, "consent")
    return _Emitted("\n".join(lines) + "\n", where)


# the task keys the sheet holds (and `sections`, made of its rows): every other key of a running task is kept as it is
SHEETED = frozenset(k for k, _, _ in COLUMNS) | {"sections"}


def _unsheeted(running: str | None) -> str:
    """The keys of a running task's file that no column holds (consent_valid_days, deferred_disclosure,
    receipt_case_ref, ...), as YAML to append to what the sheet made: an import changes what its columns say and
    nothing else (it once dropped them, so a task's deferred receipts went out at once after an import)."""
    if not running:
        return ""
    data = yaml.safe_load(running)
    if not isinstance(data, dict):
        return ""
    kept = {k: v for k, v in data.items() if k not in SHEETED}
    return "".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}\n" for k, v in kept.items())


@dataclass(frozen=True)
class Plan:
    """What an import would do: the files it changes and, per task, what changes."""
    files: tuple[FileChange, ...]
    changes: tuple[TaskChange, ...]
    tasks: int  # tasks in the spreadsheet

    @property
    def summary(self) -> str:
        kinds = [c.kind for c in self.changes]
        return (f"{counted(self.tasks, 'task')} in the spreadsheet: {kinds.count('added')} new, "
                f"{kinds.count('changed')} changed, {kinds.count('removed')} removed, "
                f"{self.tasks - kinds.count('added') - kinds.count('changed')} unchanged")

    def text(self) -> str:
        return "\n".join([self.summary, *(c.text() for c in self.changes)]) + "\n"


def plan(path: Path, base: Mapping[str, str], *, name: str | None = None, remove_missing: bool = False,
         loaded: tuple[Catalog, Policies] | None = None) -> Plan:
    """Validate the spreadsheet at `path` against the configuration `base` ({path: text}) and say what it changes.

    `loaded`: `base` as already loaded (the running snapshot), so that it is not loaded again.
    ImportInvalid lists every problem as FILE:SHEET:ROW:COLUMN: reason; nothing else is raised for bad rows."""
    shown = name or str(path)
    sheet, rows, problems = read_rows(Path(path), shown)
    if len(rows) > MAX_ROWS:
        problems.append(Problem(shown, sheet, MAX_ROWS + 1, "-", f"more than {MAX_ROWS} rows"))
    if problems:
        raise ImportInvalid(problems)
    if loaded is not None:
        cat, old = loaded
    else:
        with tempfile.TemporaryDirectory(prefix="onescreen-taskbook-") as tmp:
            cat_path, pol_dir = configstore.write_tree(base, Path(tmp) / "old")
            cat = catalog_mod.load(cat_path)
            old = policy_mod.load(pol_dir, cat)
    problems = []

    def bad(row: int, key: str, reason: str) -> None:
        problems.append(Problem(shown, sheet, row, HEADER_OF.get(key, key), reason))

    drafts: dict[str, _Draft] = {}
    for n, values in rows:
        code = values.get("code", "")
        if not code:
            bad(n, "code", "the task code is empty")
            continue
        if not _CODE.match(code):
            bad(n, "code", f"task code {code!r} must be lower-case letters, digits and _, starting with a letter")
            continue
        d = drafts.get(code)
        if d is None:
            d = drafts[code] = _Draft(code, n)
        for key in TASK_KEYS:
            text = values.get(key, "")
            if not text:
                continue
            if key in d.values and d.values[key][0] != text:
                bad(n, key, f"differs from row {d.values[key][1]} of task {code} ({d.values[key][0]!r})")
            elif key not in d.values:
                d.values[key] = (text, n)
        title, title_en = values.get("section", ""), values.get("section_en", "")
        if title:
            sec = next((s for s in d.sections if s["title"] == title), None)
            if sec is None:
                if not title_en:
                    bad(n, "section_en", f"section {title!r} needs its English title")
                sec = {"title": title, "title_en": title_en, "row": n, "items": []}
                d.sections.append(sec)
            elif title_en and sec["title_en"] and title_en != sec["title_en"]:
                bad(n, "section_en", f"differs from row {sec['row']} ({sec['title_en']!r})")
        elif d.sections:
            sec = d.sections[-1]
        else:
            bad(n, "section", f"the first row of task {code} needs a section title")
            continue
        items = [x.strip() for x in _SPLIT.split(values.get("fields", "")) if x.strip()]
        if not items:
            bad(n, "fields", "no item named")
        for item in items:
            sec["items"].append((n, item, values.get("mask", ""), values.get("full_value_basis", ""),
                                 values.get("consent", "")))

    labels = _resolver(cat)
    role_ids = set(old.roles)
    role_labels: dict[str, list[str]] = {}
    for r in old.roles.values():
        role_labels.setdefault(r.label.strip(), []).append(r.id)
    subject_labels = {st.label: st.id for st in cat.subject_types.values()}
    emitted: dict[str, _Emitted] = {}
    for code, d in drafts.items():
        v = d.values
        for key in REQUIRED:
            if key not in ("code", "fields") and not v.get(key, ("",))[0]:
                what = "missing legal basis" if key.startswith("legal_basis") else "missing value"
                bad(d.first_row, key, f"{what}: task {code} gives none on any of its rows")
        subject = v.get("subject", ("", 0))[0]
        subject = subject_labels.get(subject, subject)
        if subject and subject not in cat.subject_types:
            bad(v["subject"][1], "subject", f"unknown subject type {subject!r} "
                                            f"(known: {', '.join(sorted(cat.subject_types))})")
            subject = ""
        if subject:
            v["subject"] = (subject, v["subject"][1])
        if "roles" in v:
            ids = []
            for r in (x.strip() for x in _SPLIT.split(v["roles"][0]) if x.strip()):
                if r in role_ids:
                    ids.append(r)
                elif len(role_labels.get(r, [])) == 1:
                    ids.append(role_labels[r][0])
                elif role_labels.get(r):
                    bad(v["roles"][1], "roles", f"ambiguous role label {r!r}: give one of {', '.join(role_labels[r])}")
                else:
                    bad(v["roles"][1], "roles", f"unknown role {r!r} (known: {', '.join(sorted(role_ids))})")
            v["roles"] = (",".join(dict.fromkeys(ids)), v["roles"][1])
        if "jurisdiction" in v:
            j = JURISDICTION.get(v["jurisdiction"][0])
            if j is None:
                bad(v["jurisdiction"][1], "jurisdiction", "must be national (전국) or own_region (관할 구역)")
            else:
                v["jurisdiction"] = (j, v["jurisdiction"][1])
        if "subjects_per_request" in v:
            text = v["subjects_per_request"][0]
            if not text.isdigit() or not 1 <= int(text) <= 1000:
                bad(v["subjects_per_request"][1], "subjects_per_request", "must be a whole number from 1 to 1000")
            else:
                v["subjects_per_request"] = (str(int(text)), v["subjects_per_request"][1])
        if "case_ref_example" in v and not re.match(CASE_REF_PATTERN, v["case_ref_example"][0]):
            bad(v["case_ref_example"][1], "case_ref_example", "letters, digits, Korean and ._:/- only, up to 64")
        sections = []
        seen: dict[str, int] = {}
        for s in d.sections:
            fields = []
            for n, item, mask_cell, basis, consent_cell in s["items"]:
                if not subject:
                    continue
                path_fields, why = resolve_item(cat, labels, subject, item)
                if why:
                    bad(n, "fields", why)
                    continue
                pid = ">".join(f.id for f in path_fields)
                if pid in seen:
                    bad(n, "fields", f"item {pid} appears twice in task {code} (first at row {seen[pid]})")
                    continue
                seen[pid] = n
                mask = _mask(mask_cell)
                if mask is not None:
                    problem = check_mask(mask, path_fields[-1].columns, path_fields[-1].type)
                    if problem:
                        bad(n, "mask", f"{pid}: {problem}")
                        continue
                    if basis:
                        bad(n, "mask", f"{pid}: a mask and a full-value basis contradict each other")
                        continue
                c = consent_cell.strip().lower()
                if c not in YES and c not in NO:
                    bad(n, "consent", "must be 예 (or Y) or blank")
                    continue
                fields.append({"row": n, "path": path_fields, "mask": mask, "basis": basis, "consent": c in YES})
            if fields:
                sections.append({"title": s["title"], "title_en": s["title_en"], "row": s["row"], "fields": fields})
        if not sections:
            if subject and not any(s["items"] for s in d.sections):
                bad(d.first_row, "fields", f"task {code} names no item")
            continue
        if subject and all(v.get(k, ("",))[0] for k in ("name", "name_en", "legal_basis", "legal_basis_en", "roles")):
            emitted[code] = _emit(d, sections)
    if problems:
        raise ImportInvalid(problems)

    # the whole configuration as it would be, through the loaders and the lint, each finding mapped to its row
    by_code = {t.code: Path(t.source).name for t in old.tasks.values()}
    new_files = dict(base)
    for code, e in emitted.items():
        running = base.get(f"{configstore.POLICIES}/tasks/{by_code[code]}") if code in by_code else None
        new_files[f"{configstore.POLICIES}/tasks/{code}.yaml"] = e.text + _unsheeted(running)
    if remove_missing:
        for code, fname in by_code.items():
            if code not in drafts:
                new_files.pop(f"{configstore.POLICIES}/tasks/{fname}", None)
    for code in drafts:  # a task that lives in a file not named by its code: the import replaces that file
        fname = by_code.get(code)
        if fname and fname != f"{code}.yaml":
            new_files.pop(f"{configstore.POLICIES}/tasks/{fname}", None)
    new_pol = _load_and_lint(new_files, emitted, drafts, shown, sheet, cat, old)
    changes = task_diff(old, new_pol, set(drafts) | (set(old.tasks) - set(drafts) if remove_missing else set()))
    files = []
    for c in changes:
        key = f"{configstore.POLICIES}/tasks/{by_code.get(c.code, c.code + '.yaml')}"
        if c.kind == "removed":
            files.append(FileChange(key, base.get(key), None))
        elif by_code.get(c.code, f"{c.code}.yaml") != f"{c.code}.yaml":
            files.append(FileChange(key, base.get(key), None))
            new_key = f"{configstore.POLICIES}/tasks/{c.code}.yaml"
            files.append(FileChange(new_key, base.get(new_key), new_files[new_key]))
        else:
            files.append(FileChange(key, base.get(key), new_files[key]))
    return Plan(tuple(files), tuple(changes), len(drafts))


def _load_and_lint(files: Mapping[str, str], emitted: Mapping[str, _Emitted], drafts: Mapping[str, _Draft],
                   shown: str, sheet: str, cat: Catalog, old: Policies) -> Policies:
    """The policies as they would be, loaded over the running catalog (an import changes no catalog), and the
    lint's errors of the tasks the sheet changes (a task the same as it runs lints as it does; the proposal
    lints them all again)."""
    from .lint import _task as lint_task

    policies = {k: v for k, v in files.items() if k.startswith(f"{configstore.POLICIES}/")}
    with tempfile.TemporaryDirectory(prefix="onescreen-taskbook-") as tmp:
        _cat_path, pol_dir = configstore.write_tree(policies, Path(tmp) / "new")
        try:
            pol = policy_mod.load(pol_dir, cat)
            changed = [code for code in emitted if code in pol.tasks
                       and (code not in old.tasks or not same_task(old.tasks[code], pol.tasks[code]))]
            found = [(f.file, f.line, f.reason) for code in changed for f in lint_task(cat, pol.tasks[code])
                     if f.error]
        except ConfigErrors as exc:
            found = [(e.file, e.line, e.reason) for e in exc.errors]
        except ConfigError as exc:
            found = [(exc.file, exc.line, exc.reason)]
        if not found:
            return pol
        problems = []
        tasks_dir = (pol_dir / "tasks").resolve()
        for file, line, reason in found:
            p = Path(file).resolve()
            code = p.stem if p.parent == tasks_dir else None
            e, d = emitted.get(code or ""), drafts.get(code or "")
            if e is not None and line in e.lines:
                row, key = e.lines[line]
                problems.append(Problem(shown, sheet, row, HEADER_OF.get(key, key), reason))
            elif d is not None:
                problems.append(Problem(shown, sheet, d.first_row, HEADER_OF["code"], reason))
            else:  # a problem of the configuration the spreadsheet does not hold (another task, the catalog)
                rel = p.relative_to(Path(tmp).resolve() / "new") if p.is_relative_to(Path(tmp).resolve()) else p
                problems.append(Problem(shown, sheet, 0, "-", f"{rel}:{line or ''}: {reason}"))
        raise ImportInvalid(problems)
