"""API keys: shown once, stored as a hash, revoked, rolled, managed by owners only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey
from tests.conftest import logged_in

SECRET = re.compile(r"sk_test_[A-Za-z0-9]{24,}")


def _account(secret: str) -> int:
    """Status of `GET /v1/account` signed with `secret`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/v1/account").status_code


def _keys_url(merchant) -> str:
    return f"/accounts/merchants/{merchant.pk}/keys/"


def test_a_new_key_is_sk_test_and_at_least_24_random_characters(merchant_a):
    issued = services.api_key_create(merchant=merchant_a.merchant)

    assert SECRET.fullmatch(issued.secret)
    assert len(issued.secret) >= len("sk_test_") + 24
    assert issued.secret != merchant_a.secret


def test_only_a_hash_a_prefix_and_the_last_four_are_stored(merchant_a):
    issued = services.api_key_create(merchant=merchant_a.merchant, name="Checkout")

    row = ApiKey.objects.filter(pk=issued.api_key.pk).values().get()
    assert row["key_hash"] == services.hash_key(issued.secret)
    assert issued.secret.startswith(row["prefix"])
    assert issued.secret.endswith(row["last4"])
    assert len(row["prefix"]) + len(row["last4"]) < len(issued.secret) - 20
    assert all(issued.secret not in str(value) for value in row.values())
    # The same, read straight from the table: no column holds the secret.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")  # noqa: S608
        assert not any(issued.secret in str(cell) for line in cursor.fetchall() for cell in line)


def test_keys_page_shows_a_new_key_once(owner_a, merchant_a):
    # Given the owner on the keys page
    client = logged_in(owner_a)
    url = _keys_url(merchant_a.merchant)

    # When they create a key
    created = client.post(url, {"action": "create", "name": "Checkout"})

    # Then the response carries the full key, not to be cached
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    secrets_shown = SECRET.findall(created.content.decode())
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]
    assert ApiKey.objects.filter(key_hash=services.hash_key(secret), name="Checkout").exists()
    assert _account(secret) == 200

    # And the next page load shows it masked only
    again = client.get(url).content.decode()
    assert secret not in again
    assert not SECRET.search(again)
    assert f"{secret[:12]}…{secret[-4:]}" in again


def test_keys_page_htmx_post_returns_the_partial(owner_a, merchant_a):
    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant), {"action": "create", "name": "X"}, HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="api-keys"')
    assert "<html" not in html
    assert SECRET.search(html)


def test_revoke_from_the_keys_page(owner_a, merchant_a):
    # Given a merchant key that works
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)
    assert _account(merchant_a.secret) == 200

    # When the owner revokes it
    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant), {"action": "revoke", "key_id": api_key.pk}
    )

    # Then it is marked revoked and refused at once
    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_key.state == "revoked"
    assert _account(merchant_a.secret) == 401


def test_roll_without_keeping_the_old_key(owner_a, merchant_a):
    # Given a working key
    old = ApiKey.objects.get(merchant=merchant_a.merchant)

    # When the owner rolls it with "expire the old key now"
    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant), {"action": "roll", "key_id": old.pk, "keep_old_hours": "0"}
    )

    # Then a new key is shown once and works; the old one is refused
    new_secret = SECRET.findall(response.content.decode())
    assert len(new_secret) == 1
    assert _account(new_secret[0]) == 200
    assert _account(merchant_a.secret) == 401
    new = ApiKey.objects.get(key_hash=services.hash_key(new_secret[0]))
    assert new.rolled_from == old
    assert new.name == old.name


def test_roll_keeping_the_old_key_until_expiry(owner_a, merchant_a, clock):
    # Given a working key
    old = ApiKey.objects.get(merchant=merchant_a.merchant)

    # When the owner rolls it, keeping the old key for 24 hours
    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant),
        {"action": "roll", "key_id": old.pk, "keep_old_hours": "24"},
    )
    new_secret = SECRET.findall(response.content.decode())[0]

    # Then both keys work until the expiry
    old.refresh_from_db()
    assert old.expires_at == clock.now + timedelta(hours=24)
    assert old.revoked_at is None
    assert _account(merchant_a.secret) == 200
    assert _account(new_secret) == 200
    clock.advance(timedelta(hours=23, minutes=59))
    assert _account(merchant_a.secret) == 200

    # And after it only the new key works
    clock.advance(timedelta(minutes=1))
    assert _account(merchant_a.secret) == 401
    assert _account(new_secret) == 200


def test_rolling_a_revoked_key_is_refused(owner_a, merchant_a):
    old = ApiKey.objects.get(merchant=merchant_a.merchant)
    services.api_key_revoke(merchant=merchant_a.merchant, key_id=old.pk)

    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant), {"action": "roll", "key_id": old.pk, "keep_old_hours": "0"}
    )

    assert response.status_code == 200
    assert b"cannot be rolled" in response.content
    assert not SECRET.search(response.content.decode())
    assert ApiKey.objects.filter(merchant=merchant_a.merchant).count() == 1


def test_last_used_at_is_set_on_use(merchant_a, clock):
    # Given a key never used
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)
    assert api_key.last_used_at is None

    # When it signs a request
    assert _account(merchant_a.secret) == 200

    # Then its last use is recorded, and refreshed on a later use
    api_key.refresh_from_db()
    assert api_key.last_used_at == clock.now
    clock.advance(timedelta(minutes=5))
    _account(merchant_a.secret)
    api_key.refresh_from_db()
    assert api_key.last_used_at == clock.now


@pytest.mark.parametrize("user", ["viewer_user", "operator_user", "developer_a", "viewer_a"])
@pytest.mark.parametrize("action", ["create", "revoke", "roll"])
def test_only_owners_and_admins_may_change_keys(request, merchant_a, user, action):
    # Given someone who may see but not manage merchant A's keys
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)
    client = logged_in(request.getfixturevalue(user))
    page = client.get(_keys_url(merchant_a.merchant))
    assert page.status_code == 200
    assert b'name="action"' not in page.content

    # When they POST a key action anyway
    response = client.post(
        _keys_url(merchant_a.merchant),
        {"action": action, "key_id": api_key.pk, "name": "x", "keep_old_hours": "0"},
    )

    # Then it is refused and nothing changed
    assert response.status_code == 403
    assert ApiKey.objects.filter(merchant=merchant_a.merchant).count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_admin_may_manage_any_merchants_keys(admin_user, merchant_a):
    response = logged_in(admin_user).post(
        _keys_url(merchant_a.merchant), {"action": "create", "name": "By admin"}
    )

    assert SECRET.search(response.content.decode())
    assert ApiKey.objects.filter(merchant=merchant_a.merchant, name="By admin").exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_merchants_owner_gets_404(owner_b, merchant_a, method):
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)

    response = getattr(logged_in(owner_b), method)(
        _keys_url(merchant_a.merchant), {"action": "revoke", "key_id": api_key.pk}
    )

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_an_owner_cannot_revoke_another_merchants_key_through_their_own_page(
    owner_a, merchant_a, merchant_b
):
    # Given merchant B's key id, posted to merchant A's page
    b_key = ApiKey.objects.get(merchant=merchant_b.merchant)

    response = logged_in(owner_a).post(
        _keys_url(merchant_a.merchant), {"action": "revoke", "key_id": b_key.pk}
    )

    # Then the key is unknown there and still works
    assert response.status_code == 200
    assert b"No such API key" in response.content
    b_key.refresh_from_db()
    assert b_key.revoked_at is None


def test_admin_add_view_shows_the_secret_once(admin_user, merchant_a):
    # Given the admin on the "add API key" page
    client = logged_in(admin_user)
    assert client.get("/admin/accounts/apikey/add/").status_code == 200

    # When they add a key for merchant A
    response = client.post(
        "/admin/accounts/apikey/add/", {"merchant": merchant_a.merchant.pk, "name": "From admin"}
    )

    # Then the secret is on that page only, and the key works
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = SECRET.findall(response.content.decode())
    assert len(secret) == 1
    assert _account(secret[0]) == 200
    api_key = ApiKey.objects.get(key_hash=services.hash_key(secret[0]))
    assert api_key.created_by == admin_user
    change = client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert secret[0] not in change
    assert api_key.key_hash not in change
    assert secret[0] not in client.get("/admin/accounts/apikey/").content.decode()


def test_admin_revoke_action(admin_user, merchant_a):
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)

    response = logged_in(admin_user).post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [api_key.pk]},
    )

    assert response.status_code == 302
    assert _account(merchant_a.secret) == 401


def test_admin_roll_action_shows_the_new_secret_once(admin_user, merchant_a):
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)

    response = logged_in(admin_user).post(
        "/admin/accounts/apikey/",
        {"action": "roll_keys", "_selected_action": [api_key.pk]},
    )

    secret = SECRET.findall(response.content.decode())
    assert len(secret) == 1
    assert _account(secret[0]) == 200
    assert _account(merchant_a.secret) == 401


def test_api_keys_cannot_be_deleted_in_the_admin(admin_user, merchant_a):
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)

    response = logged_in(admin_user).get(f"/admin/accounts/apikey/{api_key.pk}/delete/")

    assert response.status_code == 403
