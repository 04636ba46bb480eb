"""Reads a YAML file into plain data plus the line of every node.

Validation errors (pydantic or cross-reference checks) are reported against
the line the admin must look at: `Lines` maps a path of keys and indexes,
e.g. ("fields", 3, "ledger"), to its 1-based line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pydantic
import yaml

from .errors import ConfigError, ConfigErrors

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 2-4x faster on large catalogs


def load(path: Path) -> tuple[Any, Lines]:
    """Parse one YAML file; duplicate keys and syntax errors are ConfigErrors with line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read file: {exc.__class__.__name__}: {exc}") from None
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = _build(node, str(path), loader) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(str(path), line, f"YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), None, f"YAML error: {exc}") from None
    return data, Lines(node)


class Lines:
    """The 1-based line of every node by its path of keys and indexes, e.g. ("fields", 3, "ledger").

    Walked from the parsed nodes on first use: only an error message needs a line, and mapping every node of
    a national catalog up front cost as much as constructing it."""

    def __init__(self, node: yaml.Node | None) -> None:
        self._node, self._map = node, None

    def _lines(self) -> dict[tuple, int]:
        if self._map is None:
            self._map = {}
            if self._node is not None:
                _walk(self._node, (), self._map)
            self._node = None
        return self._map

    def __contains__(self, path: tuple) -> bool:
        return path in self._lines()

    def __getitem__(self, path: tuple) -> int:
        return self._lines()[path]


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


def _build(node: yaml.Node, file: str, loader: Any) -> Any:
    """The data of `node`; a duplicate key is a ConfigError with its line.

    Maps, sequences and plain strings (nearly all of a catalog) are built here; every other node (numbers,
    booleans, null, dates, merge keys, other tags) by the loader's own constructor, so the result equals
    yaml.safe_load's. PyYAML's generic construction was most of a national catalog's load time.
    """
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _MAP and not any(k.tag == _MERGE for k, _ in node.value):
        out: dict = {}
        for key, value in node.value:
            k = key.value if key.tag == _STR else loader.construct_object(key, deep=True)
            if k in out:
                raise ConfigError(file, key.start_mark.line + 1, f"duplicate key {k!r}")
            try:
                out[k] = _build(value, file, loader)
            except ValueError as exc:  # a scalar of its type that is no value of it, e.g. the date 2027-02-30
                raise ConfigError(file, value.start_mark.line + 1, f"{k}: {value.value!r} is not a valid "
                                  f"{value.tag.rsplit(':', 1)[-1]}: {exc}") from None
        return out
    if tag == _SEQ:
        return [_build(item, file, loader) for item in node.value]
    if isinstance(node, yaml.MappingNode):  # with a merge key, which PyYAML resolves
        _no_duplicates(node, file)
    return loader.construct_object(node, deep=True)


def _no_duplicates(node: yaml.Node, file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key, value in node.value:
            if key.value in seen:
                raise ConfigError(file, key.start_mark.line + 1, f"duplicate key {key.value!r}")
            seen.add(key.value)
            _no_duplicates(value, file)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_duplicates(item, file)


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, path + (key.value,), lines)
            lines[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def line_of(lines: Lines, path: Iterable) -> int | None:
    """The line of the deepest known node on `path` (a pydantic loc or our own)."""
    path = tuple(str(p) if not isinstance(p, int) else p for p in path)
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def validate(model: type[pydantic.BaseModel], data: Any, lines: Lines, file: str) -> Any:
    """Validate `data` into `model`; every problem becomes a ConfigError with its line."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            where = ".".join(str(p) for p in loc) or "(top level)"
            errors.append(ConfigError(file, line_of(lines, loc), f"{where}: {err['msg']}"))
        raise ConfigErrors(errors) from None
