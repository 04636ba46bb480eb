"""Region codes of the administrative hierarchy, and which subjects a caseworker's office covers.

Owns the jurisdiction part of invariant 1 (deny by default): a caller's region is `national` (said so
explicitly), a 시도 office `NN000` (covers its 시도) or a 시군구 office `NNNNN` (covers exactly that 시군구);
anything else is malformed and covers nothing. A subject's 10-digit 법정동 code (or 5-digit 시군구 code)
belongs to the 시군구 of its first five digits. No code covers by a prefix that merely happens to match.
"""
from __future__ import annotations

NATIONAL = "national"  # the region value of an office with nationwide jurisdiction (e.g. a ministry, LH)


def problem(region: object) -> str | None:
    """Why `region` is not a region a caller can hold, or None when it is one."""
    if region == NATIONAL:
        return None
    if not isinstance(region, str):
        return f"the region must be a string: '{NATIONAL}' or a five-digit region code"
    if len(region) != 5 or not region.isascii() or not region.isdigit():
        return (f"the region must be '{NATIONAL}' or a five-digit region code: NN000 for a 시도 office, "
                "NNNNN for a 시군구 office")
    if region[:2] == "00":
        return f"00 is no 시도 code; an office with nationwide jurisdiction has the region '{NATIONAL}'"
    return None


def covers(region: str | None, code: object) -> bool:
    """Whether an office of `region` covers a subject whose 법정동 (or 시군구) code is `code`.

    A missing or malformed region, or a missing or malformed code, covers nothing (fail closed)."""
    if region is None or problem(region) is not None:
        return False
    if region == NATIONAL:
        return True
    if not isinstance(code, str) or len(code) not in (5, 10) or not code.isascii() or not code.isdigit():
        return False
    if region.endswith("000"):  # a 시도 office: every 시군구 of its 시도
        return code[:2] == region[:2]
    return code[:5] == region  # a 시군구 office: exactly its own 시군구
