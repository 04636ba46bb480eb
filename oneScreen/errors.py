"""The one exception hierarchy of oneScreen.

Every class carries what its reader needs to act, and a stable ``code`` that
reaches GraphQL clients as ``extensions.code``. Messages never hold a field
value, a subject identifier, SQL or a secret.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 field", "2 fields": a count with its noun in agreement, for the English of messages."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class OneScreenError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(OneScreenError):
    """A configuration file is wrong: says which file, which line and why."""

    code = "CONFIG_INVALID"

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file, self.line, self.reason = str(file), line, reason
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {reason}")


class ConfigErrors(OneScreenError):
    """Several configuration problems found in one pass (all are reported at once)."""

    code = "CONFIG_INVALID"

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.message for e in errors))


def load_each(paths: Iterable[Path], load: Callable[[Path], T], key: Callable[[T], str], what: str,
              errors: list[ConfigError]) -> dict[str, T]:
    """Each file of `paths` read by `load`, by `key`: a file's own problems, and a key an earlier file already
    defines, are appended to `errors` (so one pass reports them all) instead of stopping the load."""
    out: dict[str, T] = {}
    for path in paths:
        try:
            item = load(path)
        except ConfigError as exc:
            errors.append(exc)
            continue
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        k = key(item)
        if k in out:
            errors.append(ConfigError(str(path), 1, f"{what} {k!r} is already defined in {out[k].source}"))  # type: ignore[attr-defined]
        out[k] = item
    return out


class Unauthenticated(OneScreenError):
    code = "UNAUTHENTICATED"


class TaskForbidden(OneScreenError):
    code = "TASK_FORBIDDEN"


class AdminForbidden(OneScreenError):
    """The caller's roles are granted no admin or audit action that would do (permissions in roles.yaml)."""

    code = "ADMIN_FORBIDDEN"


class FieldDenied(OneScreenError):
    code = "FIELD_DENIED"

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"field {field} is not disclosed: {reason}")


class ReadNotAgreed(FieldDenied):
    """A field read only to check or find a subject (the jurisdiction check's region, a search's matching), which
    no sharing agreement in force covers for the task and the caller: not read, and the request refused."""

    def __init__(self, field: str, purpose: str, reason: str) -> None:
        super().__init__(field, reason)
        self.purpose = purpose
        self.message = f"field {field} is not read for {purpose}: {reason}"
        self.args = (self.message,)


class ConsentRequired(FieldDenied):
    """Not disclosed until the subject's consent (or an exception) is recorded with recordConsent."""

    code = "CONSENT_REQUIRED"


class LedgerUnavailable(OneScreenError):
    code = "LEDGER_UNAVAILABLE"

    def __init__(self, ledger: str, reason: str) -> None:
        self.ledger, self.reason = ledger, reason
        super().__init__(f"ledger {ledger} is unavailable: {reason}")


class LedgerPartial(OneScreenError):
    """The ledger holds more rows for the subject than were read (a page limit): the field is not given as whole."""

    code = "LEDGER_PARTIAL"

    def __init__(self, ledger: str, reason: str) -> None:
        self.ledger, self.reason = ledger, reason
        super().__init__(f"ledger {ledger} was read only in part: {reason}")


class BadValue(OneScreenError):
    """A ledger's value cannot be shown as its catalog type (the reason says why; it never repeats the value)."""

    code = "BAD_VALUE"

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"field {field}: the ledger's value cannot be shown: {reason}")


class BadRequest(OneScreenError):
    code = "BAD_REQUEST"


class TooManySubjects(OneScreenError):
    """A request names more subjects than its task lets one request look up: nothing of it is read."""

    code = "TOO_MANY_SUBJECTS"


class OutsideJurisdiction(OneScreenError):
    """The subject is not in the caller's jurisdiction for this task (or the caller has no valid region)."""

    code = "OUTSIDE_JURISDICTION"
