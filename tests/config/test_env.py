"""Settings come from the environment and refuse malformed values loudly.

A wrong value must stop the process at start-up with a message naming the
variable, not surface later as odd behaviour.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        ("PAYLAB_DEBUG", "maybe", lambda env: env.boolean("PAYLAB_DEBUG")),
        ("PAYLAB_HTTPS", "2", lambda env: env.boolean("PAYLAB_HTTPS")),
        ("PAYLAB_RATE_LIMIT", "ten", lambda env: env.integer("PAYLAB_RATE_LIMIT", 100)),
        ("PAYLAB_RATE_LIMIT", "1.5", lambda env: env.integer("PAYLAB_RATE_LIMIT", 100)),
        (
            "PAYLAB_LOGIN_FAILURE_LIMIT",
            "-3",
            lambda env: env.integer("PAYLAB_LOGIN_FAILURE_LIMIT", 5, minimum=1),
        ),
        (
            "PAYLAB_DB_POOL_TIMEOUT",
            "soon",
            lambda env: env.number("PAYLAB_DB_POOL_TIMEOUT", 10.0),
        ),
        (
            "PAYLAB_DB_POOL_TIMEOUT",
            "-1",
            lambda env: env.number("PAYLAB_DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        ),
        (
            "DATABASE_URL",
            "mysql://paylab:hunter2@db/paylab",
            lambda env: env.url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite")),
        ),
        (
            "REDIS_URL",
            "http://127.0.0.1:6379/0",
            lambda env: env.url("REDIS_URL", schemes=("redis", "rediss")),
        ),
    ],
)
def test_malformed_value_is_refused_naming_the_variable(name, raw, read):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        read(Env({name: raw}))

    assert name in str(excinfo.value)


def test_url_error_does_not_echo_the_password():
    with pytest.raises(ImproperlyConfigured) as excinfo:
        Env({"DATABASE_URL": "mysql://paylab:hunter2@db/paylab"}).url(
            "DATABASE_URL", schemes=("postgres",)
        )

    assert "hunter2" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("YES", True), (" on ", True), ("1", True), ("false", False), ("0", False)],
)
def test_boolean_accepts_the_usual_spellings(raw, expected):
    assert Env({"FLAG": raw}).boolean("FLAG") is expected


def test_unset_and_empty_values_fall_back_to_defaults():
    env = Env({"EMPTY": ""})

    assert env.integer("UNSET", 7) == 7
    assert env.integer("EMPTY", 7) == 7
    assert env.string("EMPTY", "fallback") == "fallback"
    assert env.csv("EMPTY", ["a"]) == ["a"]
    assert env.url("EMPTY", schemes=("redis",)) is None


def test_csv_splits_and_trims():
    assert Env({"HOSTS": " a.example, b.example ,,"}).csv("HOSTS") == ["a.example", "b.example"]


def _import_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    """Import config.settings in a fresh interpreter with only `overrides` set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PAYLAB_") and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off():
    result = _import_settings()

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "PAYLAB_SECRET_KEY" in result.stderr


def test_settings_start_without_a_secret_key_in_debug():
    result = _import_settings(PAYLAB_DEBUG="true")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PAYLAB_DEBUG", "maybe"),
        ("PAYLAB_LOGIN_FAILURE_LIMIT", "ten"),
        ("PAYLAB_LOGIN_COOLOFF_MINUTES", "0"),
        ("DATABASE_URL", "mysql://paylab@127.0.0.1/paylab"),
        ("REDIS_URL", "memcached://127.0.0.1:11211"),
        ("PAYLAB_PROFILE", "staging"),
    ],
)
def test_settings_refuse_to_start_with_a_malformed_value(name, raw):
    result = _import_settings(PAYLAB_SECRET_KEY="x" * 50, **{name: raw})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.strip().splitlines()[-1]
