"""Stripe's metadata rules: up to 50 keys, keys ≤ 40 characters, values ≤
500; an empty value deletes a key; an empty object clears them all."""

from __future__ import annotations

from typing import Any

from config.errors import InvalidRequestError

MAX_KEYS = 50
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500


def validate_metadata(metadata: Any, param: str = "metadata") -> dict[str, str] | None:
    if metadata is None:
        return None
    if metadata == "":
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError(
            "Invalid metadata: must be an object of string keys and values.", param=param
        )
    result: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidRequestError(
                f"Metadata keys must be 1 to {MAX_KEY_LENGTH} characters.", param=f"{param}[{key}]"
            )
        if isinstance(value, dict | list):
            raise InvalidRequestError("Metadata values must be strings.", param=f"{param}[{key}]")
        text = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidRequestError(
                f"Metadata values can be at most {MAX_VALUE_LENGTH} characters.",
                param=f"{param}[{key}]",
            )
        result[key] = text
    return result


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    if update is None:
        return dict(current)
    if update == {}:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_KEYS:
        raise InvalidRequestError(f"Metadata can have at most {MAX_KEYS} keys.", param="metadata")
    return merged
