"""The demo's active configuration: a copy of the shipped catalog and policies in the data directory.

A demo admin's approved change rewrites the active files, never the repository's own field_catalog.yaml and
policies/ (the shipped files); those change only by an explicit `onescreen config export`. The copy is made on
first start and follows the shipped files while nobody edited it; an edited copy is kept (and said so) when the
shipped files change under it, until `onescreen config reset`. A part set explicitly (ONESCREEN_CATALOG,
ONESCREEN_POLICIES) is used as it is.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings

log = logging.getLogger("onescreen.demo")
MANIFEST = ".copied-from.json"  # in the active configuration directory: digests of what was copied, and from where


@dataclass(frozen=True)
class Part:
    name: str  # "catalog" | "policies"
    active: Path
    shipped: Path


def parts(settings: Settings) -> list[Part]:
    """The parts of the configuration that live in the data directory (those not set explicitly)."""
    home = settings.active_config_dir
    return [p for p in (Part("catalog", settings.catalog_path, settings.shipped_catalog),
                        Part("policies", settings.policies_dir, settings.shipped_policies))
            if home is not None and p.active.parent == home]


def ensure(settings: Settings) -> list[str]:
    """Make the active copy current (copy on first start; follow the shipped files while unedited); returns what
    it did, one line a part (also logged)."""
    if not settings.demo:
        return []
    said = []
    for part in parts(settings):
        manifest = _manifest(part.active.parent)
        seen = manifest.get(part.name) or {}
        shipped = digest(part.shipped)
        if not part.active.exists():
            _copy(part.shipped, part.active)
            said.append(f"demo configuration: copied {part.shipped} to {part.active}")
            log.info(said[-1])
        elif shipped == seen.get("shipped"):
            continue  # the shipped files did not change since the copy
        elif digest(part.active) == shipped:
            pass  # in step (e.g. just exported): only the manifest is behind
        elif digest(part.active) == seen.get("copied"):
            _copy(part.shipped, part.active)
            said.append(f"demo configuration: {part.shipped} changed and the copy was never edited: copied again")
            log.info(said[-1])
        else:
            said.append(f"demo configuration: {part.shipped} changed since the demo copied it, and the demo's copy "
                        f"{part.active} was edited: the edited copy is kept (`onescreen config reset` starts again "
                        "from the shipped files; `onescreen config export` writes the copy out)")
            log.warning(said[-1])
            continue
        manifest[part.name] = {"shipped": shipped, "copied": digest(part.active), "from": str(part.shipped)}
        _write_manifest(part.active.parent, manifest)
    return said


def reset(settings: Settings) -> list[Path]:
    """Start the active copy again from the shipped files (the demo's edits are dropped)."""
    done = []
    for part in parts(settings):
        _copy(part.shipped, part.active)
        manifest = _manifest(part.active.parent)
        manifest[part.name] = {"shipped": digest(part.shipped), "copied": digest(part.active),
                               "from": str(part.shipped)}
        _write_manifest(part.active.parent, manifest)
        done.append(part.active)
    return done


def export(settings: Settings, catalog: Path, policies: Path) -> list[Path]:
    """Write the demo's parts of the configuration to `catalog` and `policies` (the shipped files, unless told
    otherwise): each file that differs, atomically; task files the active policies no longer have are removed.
    Returns the files written or removed."""
    from ..changes import FileChange, write_atomically

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.is_file() else None

    changes: list[FileChange] = []
    for part in parts(settings):
        if part.name == "catalog":
            pairs = [(part.active, catalog)]
        else:
            names = {p.relative_to(part.active) for p in part.active.rglob("*.yaml")}
            names |= {p.relative_to(policies) for p in policies.rglob("*.yaml")} if policies.is_dir() else set()
            pairs = [(part.active / rel, policies / rel) for rel in sorted(names)]
        for source, dest in pairs:
            old, new = text(dest), text(source)
            if old != new:
                changes.append(FileChange(dest, old, new))
                dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(changes)
    return [Path(c.path) for c in changes]


def digest(path: Path) -> str | None:
    """sha256 over a file, or over a directory's files (relative names and contents, in name order)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _copy(src: Path, dest: Path) -> None:
    """Copy a file or a directory into place as one rename (a process starting at the same time sees the old
    copy or the new one, never half of one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent)) / dest.name
    try:
        if src.is_dir():
            shutil.copytree(src, staged)
        else:
            shutil.copy2(src, staged)
        if dest.is_dir():
            old = staged.parent / f"{dest.name}.old"
            os.replace(dest, old)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)


def _manifest(home: Path) -> dict:
    try:
        return json.loads((home / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(home: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=home)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, home / MANIFEST)
