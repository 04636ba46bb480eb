"""Local secret files of demo mode (the demo signing key, the audit pseudonym key): made once, mode 0600.

Production takes its secrets from the environment (settings.py); these files are demo mode's stand-ins.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def local_key(path: Path) -> bytes:
    """The key in `path` (hex), created with 32 random bytes on first use. Created exclusively (O_EXCL), so
    two workers starting together agree on one key; readable by the owner only."""
    path = Path(path)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
