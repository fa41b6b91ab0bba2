"""A library of the monorepo example (Pants infers the app's dependency on it from the import)."""

from __future__ import annotations


def greet(greeting: str, names: list[str]) -> str:
    return f"{greeting}, {' and '.join(names)}!"
