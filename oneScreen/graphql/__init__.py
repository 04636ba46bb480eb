"""GraphQL: a thin skin of types over planner, gateway and screen."""
from .schema import build_schema

__all__ = ["build_schema"]
