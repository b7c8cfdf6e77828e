"""Typed readers for environment variables.

Every setting PayLab takes from the environment goes through one of these, so
a malformed value stops the process at start-up with a message that names the
variable and what was expected, instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    """Reads typed values from a mapping (the process environment by default)."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self.source = os.environ if source is None else source

    def _raw(self, name: str) -> str | None:
        value = self.source.get(name)
        return None if value is None else value.strip()

    def string(self, name: str, default: str | None = None) -> str | None:
        raw = self._raw(name)
        return default if raw is None or raw == "" else raw

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a boolean; use one of true/false, 1/0, yes/no, on/off."
        )

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
        return value

    def csv(self, name: str, default: list[str] | None = None) -> list[str]:
        raw = self._raw(name)
        if raw is None or raw == "":
            return list(default or [])
        return [item.strip() for item in raw.split(",") if item.strip()]

    def url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        """A URL whose scheme is one of `schemes`, or None when unset."""
        raw = self._raw(name)
        if raw is None or raw == "":
            return None
        parsed = urlparse(raw)
        if parsed.scheme not in schemes or not (parsed.hostname or parsed.path):
            expected = ", ".join(f"{s}://…" for s in schemes)
            # The value may hold a password: name only its scheme in the message.
            raise ImproperlyConfigured(
                f"{name} must be a URL of the form {expected}; "
                f"got one with scheme {parsed.scheme!r}."
            )
        return raw
