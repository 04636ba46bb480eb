"""GraphQL: a thin skin of types over the door (disclose.py): it parses, validates, calls the door and
shapes its result; nothing here decides, reads or masks."""
from .schema import build_schema

__all__ = ["build_schema"]
