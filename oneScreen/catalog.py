"""The field catalog: agencies, subject types, ledgers, fields and links.

Loads `field_catalog.yaml`, validates it (file, line and reason for every
problem) and compiles it into an immutable `Catalog` (invariant 8: a
snapshot is never changed; a reload builds a new one).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field as PField

from . import yamlfile
from .errors import ConfigError, ConfigErrors

FieldType = Literal["string", "integer", "number", "date", "boolean", "record", "link"]
SCALAR_TYPES = ("string", "integer", "number", "date", "boolean")
SENSITIVITY = ("public", "internal", "personal", "sensitive", "unique_id")
# kinds of personal data a field or record column carries; `onescreen policy lint` holds each task to one
# treatment (full or one mask) per kind across every field and column that carries it
PersonalData = Literal["name", "rrn", "address", "phone", "birth_date"]
ID_RE = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
NAME_RE = r"^[a-z][a-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- file models (the YAML as written)


class AgencySpec(_Model):
    id: str = PField(pattern=r"^[A-Z][A-Z0-9_]*$", description="agency code, e.g. MOIS")
    name: str
    name_en: str


class SearchSpec(_Model):
    ledger: str
    by: list[list[str]] = PField(default_factory=list, description="groups of field ids matched together")
    by_key: bool = True
    contains: list[str] = PField(default_factory=list, description="fields matched by substring")
    show: list[str] = PField(default_factory=list, description="fields shown for each match")


# A subject type's id names its typed root query (citizen(...)), beside the built-in ones.
RESERVED_SUBJECT_IDS = frozenset({"tasks", "me", "screen", "subjects", "subject_search", "access_history",
                                  "ledger_columns", "changes", "preview_task", "catalog", "my_receipts",
                                  "receipt_proof", "audit_public_key", "my_receipt_subscription"})


class SubjectTypeSpec(_Model):
    id: str = PField(pattern=NAME_RE)
    label: str
    label_en: str
    key_label: str
    key_label_en: str
    key_pattern: str = PField(description="regular expression a subject key must match")
    key_arg: str = PField("id", pattern=r"^[a-z][a-zA-Z0-9]*$", description="argument name of the typed root query")
    region_field: str | None = PField(None, description="field holding the subject's legal-dong code (jurisdiction)")
    search: SearchSpec | None = None


class ConnectorSpec(_Model):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str = PField(description="connector kind: sql, rest")


class LedgerSpec(_Model):
    id: str = PField(pattern=ID_RE)
    agency: str
    name: str
    name_en: str
    subject: str
    rows: Literal["one", "many"] = "one"
    key_column: str
    cache_ttl: float = PField(60.0, ge=0)
    cache_size: int = PField(10_000, ge=0)
    timeout: float = PField(3.0, gt=0, description="seconds a read may take in all, retries included")
    retries: int = PField(2, ge=0, le=5, description="retries of a read that failed retryably (timeouts, 5xx, resets)")
    max_concurrency: int = PField(10, ge=1, le=1000, description="reads in flight to this ledger at once; an SQL "
                                  "ledger's pool holds as many connections per process (a REST ledger's too, "
                                  "unless its connector.max_connections says otherwise)")
    breaker_failures: int = PField(5, ge=1, description="consecutive failed attempts that open the circuit")
    breaker_reset: float = PField(30.0, gt=0, description="seconds an open circuit waits before a probe")
    last_modified_column: str | None = PField(None, description=(
        "the column holding each record's last-modified date, shown as the source's lastUpdated (read with "
        "every fetch of the ledger; the latest of a subject's rows)"))
    last_modified_format: str | None = PField(None, description="strptime format of last_modified_column, "
                                                                "ISO 8601 if absent")
    connector: ConnectorSpec


class ColumnSpec(_Model):
    name: str = PField(pattern=NAME_RE)
    column: str
    label: str
    label_en: str
    type: Literal["string", "integer", "number", "date", "boolean"] = "string"
    format: str | None = None
    personal_data: PersonalData | None = PField(None, description="the kind of personal data the column carries")


class PersonSpec(_Model):
    column: str = PField(description="the ledger column holding the key of the person a row is about")
    subject: str = PField(description="that person's subject type (e.g. citizen)")


class FieldSpec(_Model):
    id: str = PField(pattern=ID_RE)
    ledger: str
    label: str
    label_en: str
    type: FieldType
    sensitivity: Literal["public", "internal", "personal", "sensitive", "unique_id"]
    column: str | None = None
    columns: list[ColumnSpec] | None = None
    format: str | None = PField(None, description="strptime format of a date column, ISO if absent")
    cardinality: Literal["one", "many"] | None = None
    mask: str | dict[str, str] | None = PField(None, description="default masking strategy (unique_id fields are "
                                                                 "masked unless a task grants the full value)")
    personal_data: PersonalData | None = PField(None, description="the kind of personal data the field carries "
                                                                  "(a record field: say it per column)")
    person: PersonSpec | None = PField(None, description="a record field whose rows are each about a person (a "
                                                         "household member, a relative, an owner): the column "
                                                         "with their key, read with the row and never shown, so "
                                                         "that each person shown gets an audit record and a "
                                                         "receipt of their own")


class LinkSpec(_Model):
    id: str = PField(pattern=ID_RE)
    ledger: str
    column: str
    target: str
    label: str
    label_en: str
    sensitivity: Literal["public", "internal", "personal", "sensitive", "unique_id"] = "internal"


class CatalogFile(_Model):
    version: Literal[1]
    agencies: list[AgencySpec]
    subject_types: list[SubjectTypeSpec]
    ledgers: list[LedgerSpec]
    fields: list[FieldSpec]
    links: list[LinkSpec] = PField(default_factory=list)


# ---------------------------------------------------------------- the compiled snapshot


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    name_en: str


@dataclass(frozen=True)
class Ledger:
    id: str
    agency: Agency
    name: str
    name_en: str
    subject: str
    rows: str
    key_column: str
    cache_ttl: float
    cache_size: int
    timeout: float
    retries: int
    max_concurrency: int
    breaker_failures: int
    breaker_reset: float
    connector: Mapping[str, Any]
    last_modified_column: str | None = None  # each record's last-modified date (the source's lastUpdated)
    last_modified_format: str | None = None


@dataclass(frozen=True)
class Column:
    name: str
    column: str
    label: str
    label_en: str
    type: str
    format: str | None
    personal_data: str | None = None  # name, rrn, address, phone, birth_date: what a lint holds consistent


@dataclass(frozen=True, eq=False)  # identity: fields are unique within a snapshot, and hashed a lot
class Field:
    """One attribute of one subject type, read from one ledger. A link is a field whose value is another subject's key."""

    id: str
    subject: str
    name: str  # last segment of the id
    ledger: Ledger
    label: str
    label_en: str
    type: str
    sensitivity: str
    cardinality: str
    columns: tuple[Column, ...]  # one for scalars and links, several for records
    format: str | None = None
    target: str | None = None  # subject type a link points to
    mask: str | Mapping[str, str] | None = None  # default masking strategy
    # a record field's (ledger column, subject type) naming whom each row is about (catalog `person:`): read with
    # the rows for the audit trail (disclose.py's linked records), never shown
    person: tuple[str, str] | None = None
    source_columns: tuple[str, ...] = dc_field(default=(), init=False)  # the ledger columns it reads
    read_columns: tuple[str, ...] = dc_field(default=(), init=False)  # and its ledger's last-modified column

    @property
    def is_link(self) -> bool:
        return self.target is not None

    def __post_init__(self) -> None:
        # read per path per request by the planner: computed once
        object.__setattr__(self, "source_columns", tuple(c.column for c in self.columns))
        extra = self.ledger.last_modified_column
        read = self.source_columns
        for more in (extra, self.person[0] if self.person else None):
            if more is not None and more not in read:
                read = (*read, more)
        object.__setattr__(self, "read_columns", read)


@dataclass(frozen=True)
class SubjectType:
    id: str
    label: str
    label_en: str
    key_label: str
    key_label_en: str
    key_pattern: re.Pattern
    key_arg: str
    search: SearchSpec | None
    region_field: str | None = None


@dataclass(frozen=True)
class Catalog:
    source: str
    agencies: Mapping[str, Agency]
    subject_types: Mapping[str, SubjectType]
    ledgers: Mapping[str, Ledger]
    fields: Mapping[str, Field]  # links included
    fields_by_subject: Mapping[str, tuple[Field, ...]] = dc_field(repr=False)
    warnings: tuple[ConfigError, ...] = ()  # FILE:LINE: problems that do not stop the catalog (`catalog validate`)

    def path(self, text: str) -> tuple[Field, ...]:
        """Parse a field path 'citizen.residence > building.parcel > parcel.area' (KeyError if invalid)."""
        return parse_path(self, text)


def parse_path(catalog: Catalog, text: str) -> tuple[Field, ...]:
    ids = [p.strip() for p in text.split(">")]
    out: list[Field] = []
    for i, fid in enumerate(ids):
        f = catalog.fields.get(fid)
        if f is None:
            raise KeyError(f"unknown field {fid!r}")
        if out:
            prev = out[-1]
            if f.subject != prev.target:
                raise KeyError(f"{fid!r} is not a field of {prev.target!r}, which {prev.id!r} links to")
        if i < len(ids) - 1 and not f.is_link:
            raise KeyError(f"{fid!r} is not a link, so nothing can follow it in a path")
        out.append(f)
    return tuple(out)


def path_id(path: tuple[Field, ...]) -> str:
    """"citizen.residence>building.use": asked for every field of every request, so remembered per path (a
    catalog has a bounded number of paths; fields compare by identity, so a reloaded catalog's are new keys
    and the table is emptied when it grows past what one catalog could need)."""
    pid = _PATH_IDS.get(path)
    if pid is None:
        if len(_PATH_IDS) > 200_000:
            _PATH_IDS.clear()
        pid = _PATH_IDS[path] = ">".join(f.id for f in path)
    return pid


_PATH_IDS: dict[tuple, str] = {}


# ---------------------------------------------------------------- loading and cross-checks


def load(path: Path) -> Catalog:
    """Load and validate a catalog file; raises ConfigErrors listing every problem with its line."""
    data, lines = yamlfile.load(path)
    spec: CatalogFile = yamlfile.validate(CatalogFile, data, lines, str(path))
    return compile_catalog(spec, lines, str(path))


def compile_catalog(spec: CatalogFile, lines: yamlfile.Lines, file: str) -> Catalog:
    errors: list[ConfigError] = []

    def err(loc: tuple, reason: str) -> None:
        errors.append(ConfigError(file, yamlfile.line_of(lines, loc), reason))

    agencies: dict[str, Agency] = {}
    for i, a in enumerate(spec.agencies):
        if a.id in agencies:
            err(("agencies", i, "id"), f"duplicate agency id {a.id!r}")
        agencies[a.id] = Agency(a.id, a.name, a.name_en)

    subjects: dict[str, SubjectType] = {}
    for i, s in enumerate(spec.subject_types):
        if s.id in subjects:
            err(("subject_types", i, "id"), f"duplicate subject type {s.id!r}")
        if s.id in RESERVED_SUBJECT_IDS:
            err(("subject_types", i, "id"), f"subject type id {s.id!r} is the name of a built-in query; choose another")
        try:
            pattern = re.compile(s.key_pattern)
        except re.error as exc:
            err(("subject_types", i, "key_pattern"), f"key_pattern is not a valid regular expression: {exc}")
            pattern = re.compile(r"^$")
        subjects[s.id] = SubjectType(s.id, s.label, s.label_en, s.key_label, s.key_label_en, pattern, s.key_arg,
                                     s.search, s.region_field)

    ledgers: dict[str, Ledger] = {}
    for i, l in enumerate(spec.ledgers):
        if l.id in ledgers:
            err(("ledgers", i, "id"), f"duplicate ledger id {l.id!r}")
        if l.agency not in agencies:
            err(("ledgers", i, "agency"), f"unknown agency {l.agency!r} (known: {', '.join(sorted(agencies))})")
        if l.subject not in subjects:
            err(("ledgers", i, "subject"), f"unknown subject type {l.subject!r} (known: {', '.join(sorted(subjects))})")
        agency = agencies.get(l.agency, Agency(l.agency, l.agency, l.agency))
        ledgers[l.id] = Ledger(l.id, agency, l.name, l.name_en, l.subject, l.rows, l.key_column,
                               l.cache_ttl, l.cache_size, l.timeout, l.retries, l.max_concurrency,
                               l.breaker_failures, l.breaker_reset, dict(l.connector.model_dump()),
                               l.last_modified_column, l.last_modified_format)
        if l.last_modified_format is not None and l.last_modified_column is None:
            err(("ledgers", i, "last_modified_format"), "last_modified_format without last_modified_column")

    fields: dict[str, Field] = {}

    def add(f: Field, loc: tuple) -> None:
        if f.id in fields:
            err(loc + ("id",), f"duplicate field id {f.id!r}")
        fields[f.id] = f

    for i, fs in enumerate(spec.fields):
        loc = ("fields", i)
        subject, name = fs.id.split(".", 1)
        ledger = ledgers.get(fs.ledger)
        if ledger is None:
            err(loc + ("ledger",), f"unknown ledger {fs.ledger!r} for field {fs.id!r}")
            continue
        if subject != ledger.subject:
            err(loc + ("id",), f"field {fs.id!r} is about {subject!r} but ledger {ledger.id!r} is keyed by {ledger.subject!r}")
        cardinality = fs.cardinality or ledger.rows
        if cardinality == "many" and ledger.rows == "one":
            err(loc + ("cardinality",), f"field {fs.id!r} has cardinality many but ledger {ledger.id!r} has one row per subject")
        if fs.type == "link":
            err(loc + ("type",), "links are declared under 'links:', not 'fields:'")
            continue
        if fs.type == "record":
            if not fs.columns or fs.column:
                err(loc, f"record field {fs.id!r} needs 'columns:' (and no 'column:')")
                continue
            names = [c.name for c in fs.columns]
            if len(set(names)) != len(names):
                err(loc + ("columns",), f"record field {fs.id!r} repeats a column name")
            if fs.personal_data is not None:
                err(loc + ("personal_data",), f"record field {fs.id!r} carries personal data per column: "
                                              "give 'personal_data:' on the columns that carry it")
            columns = tuple(Column(c.name, c.column, c.label, c.label_en, c.type, c.format, c.personal_data)
                            for c in fs.columns)
        else:
            if not fs.column or fs.columns:
                err(loc, f"field {fs.id!r} of type {fs.type} needs 'column:' (and no 'columns:')")
                continue
            columns = (Column(name, fs.column, fs.label, fs.label_en, fs.type, fs.format, fs.personal_data),)
        carried = sorted({c.personal_data for c in columns if c.personal_data})
        if carried and fs.sensitivity in ("public", "internal"):
            err(loc + ("sensitivity",), f"field {fs.id!r} carries personal data ({', '.join(carried)}), so its "
                                        f"sensitivity cannot be {fs.sensitivity!r}")
        if fs.mask is not None:
            problem = check_mask(fs.mask, columns, fs.type)
            if problem:
                err(loc + ("mask",), f"field {fs.id!r}: {problem}")
        elif fs.sensitivity == "unique_id":
            err(loc, f"field {fs.id!r} is a unique identifier: give it a default 'mask:' strategy")
        person = None
        if fs.person is not None:
            if fs.type != "record":
                err(loc + ("person",), f"field {fs.id!r}: only a record field's rows are about persons of their "
                                       f"own ('person:' is for type: record)")
            elif fs.person.subject not in subjects:
                err(loc + ("person", "subject"), f"field {fs.id!r}: unknown subject type {fs.person.subject!r} "
                                                 f"(known: {', '.join(sorted(subjects))})")
            else:
                person = (fs.person.column, fs.person.subject)
        add(Field(fs.id, subject, name, ledger, fs.label, fs.label_en, fs.type, fs.sensitivity,
                  cardinality, columns, fs.format, None, fs.mask, person), loc)

    for i, ls in enumerate(spec.links):
        loc = ("links", i)
        subject, name = ls.id.split(".", 1)
        ledger = ledgers.get(ls.ledger)
        if ledger is None:
            err(loc + ("ledger",), f"unknown ledger {ls.ledger!r} for link {ls.id!r}")
            continue
        if ls.target not in subjects:
            err(loc + ("target",), f"link {ls.id!r} points to unknown subject type {ls.target!r}")
            continue
        if subject != ledger.subject:
            err(loc + ("id",), f"link {ls.id!r} is about {subject!r} but ledger {ledger.id!r} is keyed by {ledger.subject!r}")
        if ledger.rows != "one":
            err(loc + ("ledger",), f"link {ls.id!r} must come from a ledger with one row per subject")
        col = Column(name, ls.column, ls.label, ls.label_en, "string", None)
        add(Field(ls.id, subject, name, ledger, ls.label, ls.label_en, "link", ls.sensitivity, "one", (col,),
                  None, ls.target), loc)

    for i, s in enumerate(spec.subject_types):
        if s.search is None:
            continue
        loc = ("subject_types", i, "search")
        sl = ledgers.get(s.search.ledger)
        if sl is None:
            err(loc + ("ledger",), f"unknown ledger {s.search.ledger!r}")
            continue
        if sl.subject != s.id:
            err(loc + ("ledger",), f"search ledger {sl.id!r} is not keyed by {s.id!r}")
        for group_name, ids in (("by", [x for g in s.search.by for x in g]), ("contains", s.search.contains),
                                ("show", s.search.show)):
            for fid in ids:
                f = fields.get(fid)
                if f is None or f.ledger.id != sl.id or f.type not in SCALAR_TYPES:
                    err(loc + (group_name,), f"search field {fid!r} must be a scalar field of ledger {sl.id!r}")

    for i, s in enumerate(spec.subject_types):
        if s.region_field is not None:
            f = fields.get(s.region_field)
            if f is None or f.subject != s.id or f.type != "string" or f.cardinality != "one":
                err(("subject_types", i, "region_field"),
                    f"region_field {s.region_field!r} must be a single string field of {s.id!r}")

    if errors:
        raise ConfigErrors(errors)
    warnings: list[ConfigError] = []
    for i, fs in enumerate(spec.fields):
        for j, (column, ftype) in enumerate([(fs.column, fs.type)] if fs.columns is None
                                            else [(c.column, c.type) for c in fs.columns]):
            if column and ftype in ("integer", "number") and key_like(column):
                loc = ("fields", i) + (() if fs.columns is None else ("columns", j)) + ("type",)
                warnings.append(ConfigError(file, yamlfile.line_of(lines, loc), (
                    f"field {fs.id!r} reads column {column!r}, which looks like an identifier (a key, number or "
                    f"code), as type {ftype}: identifiers are strings (leading zeros, 20 and more digits that no "
                    f"number holds exactly); give it type: string")))
    by_subject: dict[str, list[Field]] = {s: [] for s in subjects}
    for f in fields.values():
        by_subject[f.subject].append(f)
    return Catalog(file, agencies, subjects, ledgers, fields, {k: tuple(v) for k, v in by_subject.items()},
                   tuple(warnings))


# A column name that says "identifier": a key (pk, id, key, uuid), a number given out (no, sn, seq, 번호), a code
# (cd, code, 코드) or a known identifier (rrn, pnu, brn, vin): the whole name, its last snake_case part, or its
# last camelCase part (mgmBldrgstPk, sigunguCd, vhrNo).
_KEY_WORDS = ("pk", "id", "key", "uuid", "no", "sn", "seq", "cd", "code", "rrn", "pnu", "brn", "vin")
_KEY_PLAIN = re.compile(rf"(?:^|[_\-])(?:{'|'.join(_KEY_WORDS)})$|번호$|코드$", re.IGNORECASE)
_KEY_CAMEL = re.compile(rf"[a-z0-9](?:{'|'.join(w.capitalize() for w in _KEY_WORDS)})$")
_NUMERIC = re.compile(r"(?:NUMERIC|DECIMAL|NUMBER)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def key_like(column: str) -> bool:
    """Whether a source column's name says it holds identifiers (for a REST item path: its last part)."""
    name = column.rsplit(".", 1)[-1]
    return bool(_KEY_PLAIN.search(name) or _KEY_CAMEL.search(name))


def propose_type(column: str, source_type: str) -> str:
    """The catalog type `catalog introspect` proposes for a source column of `source_type` (a database's type
    or a REST item's JSON kind): string for identifiers and for integers wider than JSON clients hold exactly
    (15 digits and more; a JSON integer beyond 2^53), else the type the source's kind maps to."""
    t = source_type.upper()
    if key_like(column) or "53 BITS" in t:
        return "string"
    m = _NUMERIC.search(t)
    if m:
        precision, scale = int(m.group(1)), int(m.group(2) or 0)
        return "number" if scale else "integer" if precision <= 15 else "string"
    if "INT" in t:
        return "integer"
    if any(k in t for k in ("REAL", "FLOAT", "DOUBLE", "NUMERIC", "DECIMAL", "NUMBER")):
        return "number"
    if "DATE" in t or "TIMESTAMP" in t:
        return "date"
    if "BOOL" in t:
        return "boolean"
    return "string"


def check_mask(mask: str | Mapping[str, str], columns: tuple[Column, ...], ftype: str) -> str | None:
    """What is wrong with `mask` on a field of type `ftype` with `columns` (None: nothing): the strategy must exist
    and apply to the masked value's type (masking.APPLIES_TO), a record masks per column."""
    from .masking import APPLIES_TO, STRATEGIES

    def problem(strategy: str, vtype: str, what: str) -> str | None:
        if strategy not in STRATEGIES:
            return f"unknown mask strategy {strategy!r} (known: {', '.join(STRATEGIES)})"
        if vtype not in APPLIES_TO[strategy]:
            return (f"mask {strategy} does not apply to {what} of type {vtype} (it applies to "
                    f"{' and '.join(sorted(APPLIES_TO[strategy]))})")
        return None

    if isinstance(mask, str):
        if ftype == "record":
            return "a record field masks per column: mask: {column: strategy}"
        return problem(mask, ftype, "a field")
    if ftype != "record":  # masking.apply would take the value for a row of columns, and fail on it
        return f"a {ftype} field masks with one strategy: mask: STRATEGY (a mapping masks a record's columns)"
    by_name = {c.name: c for c in columns}
    for col, strategy in mask.items():
        if col not in by_name:
            return f"mask names column {col!r}, which the record does not have"
        if (found := problem(strategy, by_name[col].type, f"column {col!r}")) is not None:
            return found
    return None


def json_schema() -> dict:
    """JSON Schema of field_catalog.yaml, from the same models the loader uses."""
    return CatalogFile.model_json_schema()
