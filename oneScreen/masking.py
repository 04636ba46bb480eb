"""Masking strategies: rrn, name, phone, address, date (to year).

Owns invariant 6 with policy.py (which picks the strategy) and disclose.py (which
applies it to every MASKED field, the one place that does): a masked field's raw
value is replaced inside the service, before anything is serialised. Each
strategy is total: any input gives a masked string (or None), never the raw
value back, so a malformed ledger value cannot slip through unmasked.
"""
from __future__ import annotations

import re
from typing import Any, Callable

_RRN = re.compile(r"^(\d{6})-?(\d)\d{6}$")
_PHONE = re.compile(r"^(\d{2,3})-?(\d{3,4})-?(\d{4})$")
_DATE = re.compile(r"^(\d{4})-\d{2}-\d{2}$")
_AREA_SUFFIXES = ("읍", "면", "동", "가", "리")
_UPPER_SUFFIXES = ("도", "시", "군", "구")


def rrn(value: str) -> str:
    """900101-1234567 -> 900101-1****** (birth date and the first digit of the back part)."""
    m = _RRN.match(value.strip())
    return f"{m.group(1)}-{m.group(2)}******" if m else "******-*******"


def name(value: str) -> str:
    """홍길동 -> 홍*동, 홍길 -> 홍*, 남궁민수 -> 남**수."""
    v = value.strip()
    if len(v) <= 1:
        return "*"
    if len(v) == 2:
        return v[0] + "*"
    return v[0] + "*" * (len(v) - 2) + v[-1]


def phone(value: str) -> str:
    """010-1234-5678 -> 010-****-5678."""
    m = _PHONE.match(value.strip())
    return f"{m.group(1)}-****-{m.group(3)}" if m else "***-****-****"


def address(value: str) -> str:
    """Down to 읍/면/동: '서울특별시 종로구 자하문로 45, 302호 (청운동)' -> '서울특별시 종로구 청운동'."""
    text = value.strip()
    tokens = text.split()
    out: list[str] = []
    for tok in tokens:
        clean = tok.strip(",()")
        if clean.endswith(_AREA_SUFFIXES) and out and not any(ch.isdigit() for ch in clean[:1]):
            out.append(clean)
            return " ".join(out)
        if clean.endswith(_UPPER_SUFFIXES) and not any(ch.isdigit() for ch in clean):
            out.append(clean)
            continue
        break
    paren = re.search(r"\(([^,)]+)", text)
    if paren and paren.group(1).strip().endswith(_AREA_SUFFIXES):
        out.append(paren.group(1).strip())
    return " ".join(out) if out else "***"


def date_year(value: str) -> str:
    """1990-01-01 -> 1990."""
    m = _DATE.match(str(value).strip())
    return m.group(1) if m else "****"


STRATEGIES: dict[str, Callable[[str], str]] = {
    "rrn": rrn, "name": name, "phone": phone, "address": address, "date_year": date_year,
}
# The catalog types each strategy applies to. Every strategy gives a string, so a mask on a number or a boolean
# would change the field's type under its clients (the typed API's Int, Float, Boolean): refused at load.
# date_year gives "2000" for a date: the typed API's Date scalar takes an ISO date or a year alone.
APPLIES_TO: dict[str, frozenset[str]] = {
    "rrn": frozenset({"string"}), "name": frozenset({"string"}), "phone": frozenset({"string"}),
    "address": frozenset({"string"}), "date_year": frozenset({"date", "string"}),
}


def apply(strategy: str | dict[str, str], value: Any) -> Any:
    """Mask a field value: a scalar, a list of scalars, or records (a strategy per record column)."""
    if value is None:
        return None
    if isinstance(strategy, dict):
        rows = value if isinstance(value, list) else [value]
        masked = [{k: (apply(strategy[k], v) if k in strategy else v) for k, v in row.items()} for row in rows]
        return masked if isinstance(value, list) else masked[0]
    fn = STRATEGIES[strategy]
    if isinstance(value, list):
        return [None if v is None else fn(str(v)) for v in value]
    return fn(str(value))
