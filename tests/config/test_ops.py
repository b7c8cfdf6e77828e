"""Operations: liveness, readiness naming what is down, and the request log."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.db import connections
from django.test import Client, override_settings
from rest_framework.test import APIClient

from config.logging import JsonFormatter
from tests.conftest import logged_in

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [UNREACHABLE_REDIS]},
    }
}


@pytest.fixture
def unreachable_database():
    """Swap the default connection for one to a database that cannot be reached.

    A real connection attempt fails, the way it would with the server down:
    SQLite cannot open a file in a missing directory, and nothing listens on
    PostgreSQL's port 1. The test's own connection is put back afterwards.
    """
    real = connections["default"]
    settings_dict = {**real.settings_dict}
    if real.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent/paylab/readyz.sqlite3"
    else:
        settings_dict.update(HOST="127.0.0.1", PORT="1", OPTIONS={"connect_timeout": 2})
    broken = real.__class__(settings_dict, alias="default")
    connections["default"] = broken
    try:
        yield
    finally:
        broken.close()
        connections["default"] = real


@pytest.mark.django_db
def test_healthz(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_200_when_every_dependency_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "channel_layer", "broker", "outbox"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], int | float)


@pytest.mark.django_db
def test_readyz_is_503_naming_the_database_when_it_is_unreachable(client, unreachable_database):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["status"] == "unavailable"
    assert "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["broker"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(client):
    with override_settings(CELERY_BROKER_URL=UNREACHABLE_REDIS):
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "ok"
    # A dead dependency costs a bounded wait, not a hung probe.
    assert elapsed < 10


@pytest.mark.django_db
def test_readyz_is_503_naming_the_channel_layer_when_it_is_unreachable(client):
    with override_settings(CHANNEL_LAYERS=UNREACHABLE_CHANNEL_LAYERS):
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["status"] == "unavailable"
    assert elapsed < 10


@pytest.mark.django_db
def test_readyz_names_every_failing_dependency(client):
    with override_settings(
        CELERY_BROKER_URL=UNREACHABLE_REDIS, CHANNEL_LAYERS=UNREACHABLE_CHANNEL_LAYERS
    ):
        response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["channel_layer", "broker"]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/accounts/login/", 200),
        ("/", 302),
        ("/v1/account", 401),
        ("/v1/no_such_thing", 404),
        ("/no/such/page", 404),
    ],
)
@pytest.mark.django_db
def test_every_response_has_a_request_id(client, url, status):
    response = client.get(url)

    assert response.status_code == status
    assert response["Request-Id"].startswith("req_")


@pytest.mark.django_db
def test_request_ids_differ_between_requests(client):
    assert client.get("/healthz")["Request-Id"] != client.get("/healthz")["Request-Id"]


def _request_lines(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "paylab.request"
    ]


def test_request_log_line_is_json_with_the_request_facts(caplog, merchant_a):
    # Given an API call that carries the key in a header and in the query string
    caplog.set_level(logging.INFO, logger="paylab.request")
    client = merchant_a.api()

    # When it is served
    response = client.get(f"/v1/account?api_key={merchant_a.secret}&card=4242424242424242")

    # Then one JSON line records it, without the key or the query string
    assert response.status_code == 200
    [line] = _request_lines(caplog)
    assert line["message"] == "request"
    assert line["request_id"] == response["Request-Id"]
    assert line["method"] == "GET"
    assert line["path"] == "/v1/account"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["merchant_id"] == merchant_a.merchant.pk
    for text in (caplog.text, json.dumps(line)):
        assert merchant_a.secret not in text
        assert merchant_a.secret[8:] not in text
        assert "api_key" not in text
        assert "4242424242424242" not in text


def test_request_log_of_a_rejected_key_has_no_merchant_and_no_key(caplog, merchant_a):
    caplog.set_level(logging.INFO, logger="paylab.request")
    wrong = merchant_a.secret[:-1] + ("x" if merchant_a.secret[-1] != "x" else "y")

    response = APIClient().get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {wrong}")

    assert response.status_code == 401
    [line] = _request_lines(caplog)
    assert line["status"] == 401
    assert line["merchant_id"] is None
    assert wrong not in caplog.text
    assert wrong[8:] not in json.dumps(line)


def test_request_log_names_the_merchant_of_a_logged_in_merchant_user(caplog, owner_a):
    caplog.set_level(logging.INFO, logger="paylab.request")

    logged_in(owner_a).get("/")

    [line] = _request_lines(caplog)
    assert line["merchant_id"] == owner_a.merchant_id
    assert line["status"] == 200


def test_request_log_never_holds_a_password(caplog, operator_user):
    caplog.set_level(logging.DEBUG)

    Client().post(
        "/accounts/login/", {"username": "operator@paylab.test", "password": "hunter2-secret"}
    )

    assert "hunter2-secret" not in caplog.text
    assert all("hunter2-secret" not in JsonFormatter().format(record) for record in caplog.records)
