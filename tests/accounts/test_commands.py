"""Management commands for scripted setup: `merchant`, `user`, `demo`."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, Merchant, User

PASSWORD = "a long enough passphrase 7"


def _run(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _key_works(secret: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/v1/account").status_code == 200


# --- merchant -----------------------------------------------------------------


@pytest.mark.django_db
def test_merchant_create_json_prints_one_object_with_a_working_key():
    output = _run("merchant", "create", "Acme Ltd", "--json")

    [line] = output.strip().splitlines()
    result = json.loads(line)
    merchant = Merchant.objects.get()
    assert result["merchant_id"] == merchant.pk
    assert result["slug"] == merchant.slug == "acme-ltd"
    assert result["name"] == "Acme Ltd"
    assert result["secret_key"].startswith("sk_test_")
    assert _key_works(result["secret_key"])


@pytest.mark.django_db
def test_merchant_create_makes_slugs_unique():
    first = json.loads(_run("merchant", "create", "Acme Ltd", "--json"))
    second = json.loads(_run("merchant", "create", "Acme Ltd", "--json"))

    assert first["slug"] == "acme-ltd"
    assert second["slug"] == "acme-ltd-2"


@pytest.mark.django_db
def test_merchant_create_with_a_taken_slug_is_a_clear_error():
    _run("merchant", "create", "Acme Ltd", "--slug", "acme")

    with pytest.raises(CommandError, match="slug 'acme' exists already"):
        _run("merchant", "create", "Another", "--slug", "acme")
    assert Merchant.objects.count() == 1


@pytest.mark.django_db
def test_merchant_create_without_json_shows_the_key_once():
    output = _run("merchant", "create", "Acme Ltd")

    secret = output.split("Secret key (shown once): ")[1].strip()
    assert _key_works(secret)


@pytest.mark.django_db
def test_merchant_create_with_a_blank_name_is_refused():
    with pytest.raises(CommandError, match="needs a name"):
        _run("merchant", "create", "   ")


def test_merchant_list(merchant_a, merchant_b):
    output = _run("merchant", "list")

    assert "merchant-a" in output
    assert "merchant-b" in output


# --- user -----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
@pytest.mark.django_db
def test_user_create_staff_with_password_from_stdin(monkeypatch, role):
    output = _run(
        "user",
        "create",
        "Ops@Example.test",
        "--role",
        role,
        "--password-stdin",
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )

    user = User.objects.get()
    assert user.email == "ops@example.test"
    assert user.role == role
    assert user.merchant is None
    assert user.is_staff is (role == "admin")
    assert user.check_password(PASSWORD)
    assert f"Created {role} ops@example.test" in output
    assert PASSWORD not in output


@pytest.mark.parametrize("level", ["owner", "developer", "viewer"])
def test_user_create_merchant_user(monkeypatch, merchant_a, level):
    _run(
        "user",
        "create",
        "dev@a.test",
        "--merchant",
        "merchant-a",
        "--level",
        level,
        "--password-stdin",
        stdin=PASSWORD,
        monkeypatch=monkeypatch,
    )

    user = User.objects.get(email="dev@a.test")
    assert user.role == "merchant"
    assert user.merchant == merchant_a.merchant
    assert user.merchant_level == level
    assert user.check_password(PASSWORD)


@pytest.mark.django_db
def test_user_create_without_a_password_makes_a_user_who_cannot_log_in():
    output = _run("user", "create", "nopass@example.test", "--role", "viewer")

    user = User.objects.get()
    assert not user.has_usable_password()
    assert "cannot log in" in output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "superhero"], PASSWORD, "invalid choice: 'superhero'"),
        (["--merchant", "merchant-a", "--level", "boss"], PASSWORD, "invalid choice: 'boss'"),
        (["--merchant", "no-such-slug", "--level", "owner"], PASSWORD, "No merchant with slug"),
        (["--merchant", "merchant-a"], PASSWORD, "level must be one of owner, developer, viewer"),
        (["--role", "merchant"], PASSWORD, "needs a merchant"),
        (
            ["--role", "operator", "--merchant", "merchant-a", "--level", "owner"],
            PASSWORD,
            "Staff roles see every merchant",
        ),
        ([], PASSWORD, "--role is required"),
        (["--role", "viewer", "--password-stdin"], "\n", "empty password"),
        (["--role", "viewer", "--password-stdin"], "123\n", "Password rejected"),
    ],
)
def test_user_create_refuses_bad_input_clearly(monkeypatch, merchant_a, args, stdin, message):
    with pytest.raises(CommandError, match=message):
        _run("user", "create", "x@example.test", *args, stdin=stdin, monkeypatch=monkeypatch)

    assert not User.objects.filter(email="x@example.test").exists()


def test_user_create_refuses_a_duplicate_email(operator_user):
    with pytest.raises(CommandError, match="exists already"):
        _run("user", "create", "OPERATOR@paylab.test", "--role", "viewer")


# --- demo -----------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_fills_an_empty_database():
    # Given an empty database
    assert not User.objects.exists()

    # When demo runs
    result = json.loads(_run("demo", "--json", "--password", PASSWORD))

    # Then staff of every role and two merchants with users and working keys exist
    roles = {user.role for user in User.objects.filter(merchant__isnull=True)}
    assert roles == {"admin", "operator", "viewer"}
    assert Merchant.objects.count() == 2
    for merchant in Merchant.objects.all():
        assert merchant.users.filter(merchant_level="owner").exists()
        assert merchant.users.exclude(merchant_level="owner").exists()
        assert ApiKey.objects.filter(merchant=merchant).exists()
    for entry in result["merchants"]:
        assert _key_works(entry["secret_key"])
    for entry in result["users"]:
        assert User.objects.get(email=entry["email"]).check_password(PASSWORD)


@pytest.mark.django_db
def test_demo_prints_the_logins_and_keys():
    output = _run("demo")

    assert "admin@paylab.local" in output
    assert output.count("sk_test_") == 2
    password = output.split("password for every user: ")[1].split()[0]
    assert User.objects.get(email="admin@paylab.local").check_password(password)


def test_demo_does_nothing_on_a_database_with_users(operator_user):
    output = _run("demo")

    assert "demo data not added" in output
    assert User.objects.count() == 1
    assert not Merchant.objects.exists()


def test_demo_does_nothing_on_a_database_with_merchants(merchant_a):
    output = _run("demo")

    assert "demo data not added" in output
    assert not User.objects.exists()
    assert Merchant.objects.count() == 1
