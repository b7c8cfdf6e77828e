"""The API key authentication class, through real requests to `GET /v1/account`.

The key is accepted as the HTTP Basic username (what the `stripe` libraries
and `curl -u sk_test_…:` send) or as a Bearer token. Everything else is a 401
in Stripe's JSON error shape, never an HTML page.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey

URL = "/v1/account"
RANDOM_KEY = "sk_test_" + "Q7" * 16


def _basic(username: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _get(authorization: str | None, url: str = URL):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get(url)


def _assert_stripe_401(response, secret: str | None = None) -> str:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == 'Basic realm="PayLab"'
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    assert message
    if secret:
        assert secret not in response.content.decode()
    return message


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(lambda key: _basic(key), id="basic-empty-password"),
        pytest.param(lambda key: _basic(key, "ignored"), id="basic-with-password"),
        pytest.param(lambda key: f"Bearer {key}", id="bearer"),
        pytest.param(lambda key: f"bearer   {key}", id="bearer-lowercase"),
    ],
)
def test_a_valid_key_is_accepted(merchant_a, header):
    response = _get(header(merchant_a.secret))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    account = response.json()
    assert account["id"] == f"acct_{merchant_a.merchant.pk}"
    assert account["object"] == "account"
    assert account["business_profile"]["name"] == "Merchant A"
    assert account["livemode"] is False
    assert account["charges_enabled"] is True
    assert isinstance(account["created"], int)
    assert isinstance(account["settings"], dict)


def test_each_key_answers_for_its_own_merchant(merchant_a, merchant_b):
    assert _get(f"Bearer {merchant_a.secret}").json()["id"] == f"acct_{merchant_a.merchant.pk}"
    assert _get(f"Bearer {merchant_b.secret}").json()["id"] == f"acct_{merchant_b.merchant.pk}"


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        pytest.param(None, "did not provide an API key", id="missing"),
        pytest.param("Bearer ", "did not provide an API key", id="bearer-empty"),
        pytest.param(_basic(""), "did not provide an API key", id="basic-empty-username"),
        pytest.param("Bearer sk_test_short", "Invalid API Key", id="too-short"),
        pytest.param("Bearer pk_test_" + "a" * 32, "Invalid API Key", id="publishable-key"),
        pytest.param(_basic("sk_live_" + "a" * 32), "Invalid API Key", id="live-key"),
        pytest.param("Basic !!!not-base64!!!", "Basic", id="garbage-base64"),
        pytest.param(
            "Basic " + base64.b64encode(b"\xff\xfe:").decode(), "Basic", id="basic-not-utf8"
        ),
        pytest.param("Token " + RANDOM_KEY, "Authorization header", id="unknown-scheme"),
        pytest.param(f"Bearer {RANDOM_KEY}", "Invalid API Key", id="unknown-key"),
        pytest.param(_basic(RANDOM_KEY), "Invalid API Key", id="unknown-key-basic"),
    ],
)
@pytest.mark.django_db
def test_missing_or_malformed_or_unknown_keys_get_401_json(header, needle):
    response = _get(header)

    message = _assert_stripe_401(response, secret=RANDOM_KEY)
    assert needle in message


def test_a_revoked_key_gets_401(merchant_a):
    # Given merchant A's key, revoked
    api_key = ApiKey.objects.get(merchant=merchant_a.merchant)
    services.api_key_revoke(merchant=merchant_a.merchant, key_id=api_key.pk)

    # When it is used, either way
    for header in (f"Bearer {merchant_a.secret}", _basic(merchant_a.secret)):
        message = _assert_stripe_401(_get(header), secret=merchant_a.secret)

        # Then the message says why, with the key masked
        assert "revoked" in message
        assert merchant_a.secret[-4:] in message


def test_an_expired_key_gets_401(merchant_a):
    # Given a key rolled with a grace period that has run out
    issued = services.api_key_create(merchant=merchant_a.merchant)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    message = _assert_stripe_401(_get(f"Bearer {issued.secret}"), secret=issued.secret)

    assert "expired" in message


def test_a_suspended_merchants_key_gets_401(merchant_a):
    merchant_a.merchant.status = "suspended"
    merchant_a.merchant.save(update_fields=["status"])

    message = _assert_stripe_401(_get(f"Bearer {merchant_a.secret}"))

    assert "suspended" in message


def test_a_session_login_does_not_authenticate_the_api(owner_a):
    client = APIClient()
    client.force_login(owner_a, backend="django.contrib.auth.backends.ModelBackend")

    _assert_stripe_401(client.get(URL))


def test_a_browser_gets_json_too(merchant_a):
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    response = APIClient().get(URL, HTTP_ACCEPT=browser_accept)

    _assert_stripe_401(response)


def test_an_unsupported_method_is_a_json_405(merchant_a):
    response = merchant_a.api().delete(URL)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "url", ["/v1/nothing_here", "/v1/", "/v1/payment_intents/pi_123/nope", "/v1/account/extra"]
)
@pytest.mark.django_db
def test_an_unknown_url_under_v1_is_a_json_404(url):
    response = APIClient().get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert url in error["message"]
