"""The OpenAPI schema and the docs pages.

The schema must be valid, generated without a warning, list every /v1/
route, and say what the routes really answer: responses of a real PayLab are
validated against the schemas it documents for them.
"""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import URLPattern
from drf_spectacular.drainage import reset_generator_stats
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import validate as validate_spec

from payments.api.urls import urlpatterns
from tests.payments.api.conftest import Stripe

Spec = dict[str, Any]
WRITES = ("post", "delete")


def _openapi_path(pattern: URLPattern) -> str:
    """`payment_intents/<str:id>/capture` → `/v1/payment_intents/{id}/capture`."""
    return "/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def _methods(pattern: URLPattern) -> set[str]:
    return set(pattern.callback.view_class.http_method_names)  # type: ignore[attr-defined]


@pytest.fixture
def spec(client: Client) -> Spec:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    body: Spec = response.json()
    return body


# --- The schema as a whole ---------------------------------------------------------


def test_schema_is_generated_valid_and_without_warnings(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Warnings accumulate per process; count only this generation's.
    reset_generator_stats()
    target = tmp_path / "schema.yaml"

    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    except CommandError as error:
        pytest.fail(f"{error}\n{capsys.readouterr().err}")

    # openapi-spec-validator goes further than spectacular's JSON-schema check:
    # every $ref resolves, every path parameter is declared.
    validate_spec(yaml.safe_load(target.read_text()))


def test_schema_lists_every_v1_route_with_each_of_its_methods(spec: Spec) -> None:
    for pattern in urlpatterns:
        path = _openapi_path(pattern)
        assert path in spec["paths"], f"{path} is not documented"
        documented = set(spec["paths"][path]) & {"get", "post", "delete", "put", "patch"}
        assert documented == _methods(pattern), path


def test_every_v1_operation_documents_auth_errors_and_idempotency(spec: Spec) -> None:
    operation_ids = []
    for pattern in urlpatterns:
        path = _openapi_path(pattern)
        for method in _methods(pattern):
            op = spec["paths"][path][method]
            where = f"{method.upper()} {path}"
            operation_ids.append(op["operationId"])
            # Named, not spectacular's fallback `v1_payment_intents_create`.
            assert not op["operationId"].startswith("v1_"), where
            assert op["tags"], where
            assert op["security"] == [{"basicAuth": []}, {"bearerAuth": []}], where
            responses = op["responses"]
            assert "$ref" in responses["200"]["content"]["application/json"]["schema"] or (
                "oneOf" in responses["200"]["content"]["application/json"]["schema"]
            ), where
            expected_errors = {"400", "401", "429"}
            if "{id}" in path:
                expected_errors.add("404")
            if method in WRITES:
                expected_errors |= {"404", "409"}
                headers = [p["name"] for p in op["parameters"] if p["in"] == "header"]
                assert headers == ["Idempotency-Key"], where
            assert expected_errors <= set(responses), where
            for status in set(responses) - {"200"}:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {status}"
    assert len(operation_ids) == len(set(operation_ids))


def test_security_schemes_are_the_secret_key_as_basic_username_or_bearer(spec: Spec) -> None:
    schemes = spec["components"]["securitySchemes"]

    assert {name: s["scheme"] for name, s in schemes.items()} == {
        "basicAuth": "basic",
        "bearerAuth": "bearer",
    }


def test_card_operations_document_the_402_decline(spec: Spec) -> None:
    declining = {
        ("/v1/payment_intents", "post"),
        ("/v1/payment_intents/{id}/confirm", "post"),
        # a PayLab-Simulate directive at capture may decline it (issue 4)
        ("/v1/payment_intents/{id}/capture", "post"),
        ("/v1/payment_methods", "post"),
    }
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert ("402" in op["responses"]) == ((path, method) in declining), (path, method)


# --- Responses match the schema --------------------------------------------------------


def _strict(node: Any) -> Any:
    """The components, made strict for validating real responses.

    - an object with documented properties gets `additionalProperties: false`,
      so an undocumented key fails;
    - `nullable` beside `allOf`/`anyOf` (how OpenAPI 3.0 marks a nullable
      reference, and how spectacular writes it) also admits null — OpenAPI
      3.0.3 strictly ties `nullable` to a sibling `type`, the validator with it.
    """
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _strict(value) for key, value in node.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    if result.get("nullable") and "type" not in result:
        del result["nullable"]
        return {"anyOf": [result, {"enum": [None]}]}
    return result


def _assert_documented(spec: Spec, path: str, method: str, status: int, body: Any) -> None:
    response = spec["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    validate_instance(
        body,
        {**_strict(schema), "components": _strict(copy.deepcopy(spec["components"]))},
        cls=OAS30Validator,
    )


@pytest.fixture
def ids(stripe_a: Stripe) -> dict[str, str]:
    """One of each object, made through the API: a customer with a disputed
    payment, a refunded payment, and their charges, events, ledger."""
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "jenny@shop.test"}))
    disputed = stripe_a.pay("pm_card_createDispute", customer=customer["id"])
    paid = stripe_a.pay("pm_card_visa", customer=customer["id"])
    refund = stripe_a.ok(stripe_a.post("refunds", {"payment_intent": paid["id"], "amount": 100}))
    dispute = stripe_a.ok(stripe_a.get("disputes"))["data"][0]
    charge = stripe_a.ok(stripe_a.get(f"charges/{paid['latest_charge']}"))
    event = stripe_a.ok(stripe_a.get("events"))["data"][0]
    assert disputed["status"] == paid["status"] == "succeeded"
    return {
        "payment_intents": paid["id"],
        "customers": customer["id"],
        "payment_methods": paid["payment_method"],
        "refunds": refund["id"],
        "charges": charge["id"],
        "disputes": dispute["id"],
        "events": event["id"],
        "balance_transactions": charge["balance_transaction"],
    }


GETS = [
    "/v1/payment_intents",
    "/v1/payment_intents/{id}",
    "/v1/payment_intents/{id}?expand[]=customer&expand[]=payment_method&expand[]=latest_charge",
    "/v1/charges",
    "/v1/charges/{id}",
    "/v1/charges/{id}?expand[]=balance_transaction&expand[]=payment_intent&expand[]=customer",
    "/v1/refunds",
    "/v1/refunds/{id}",
    "/v1/refunds/{id}?expand[]=charge&expand[]=payment_intent&expand[]=balance_transaction",
    "/v1/customers",
    "/v1/customers/{id}",
    "/v1/customers/{id}/payment_methods",
    "/v1/payment_methods?customer={customers}",
    "/v1/payment_methods/{id}",
    "/v1/payment_methods/{id}?expand[]=customer",
    "/v1/disputes",
    "/v1/disputes/{id}",
    "/v1/events",
    "/v1/events/{id}",
    "/v1/balance",
    "/v1/balance_transactions",
    "/v1/balance_transactions/{id}",
    "/v1/payment_intents?expand[]=data.customer",
]


@pytest.mark.parametrize("url", GETS)
def test_get_responses_match_their_documented_schema(
    spec: Spec, stripe_a: Stripe, ids: dict[str, str], url: str
) -> None:
    path = url.partition("?")[0]
    resource = path.split("/")[2]
    concrete = url.replace("{id}", ids.get(resource, "")).replace("{customers}", ids["customers"])

    body = stripe_a.ok(stripe_a.client.get(concrete))

    _assert_documented(spec, path, "get", 200, body)


def test_write_and_error_responses_match_their_documented_schemas(
    spec: Spec, stripe_a: Stripe
) -> None:
    # create, manual: 200 with a payment intent
    created = stripe_a.post(
        "payment_intents",
        {
            "amount": 2_000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
            "metadata": {"order": "42"},
        },
    )
    _assert_documented(spec, "/v1/payment_intents", "post", 200, stripe_a.ok(created))
    intent = created.json()["id"]
    # capture: 200
    captured = stripe_a.post(f"payment_intents/{intent}/capture", {"amount_to_capture": 1_500})
    _assert_documented(spec, "/v1/payment_intents/{id}/capture", "post", 200, stripe_a.ok(captured))
    # capture again: 400, an illegal state
    again = stripe_a.post(f"payment_intents/{intent}/capture")
    assert again.status_code == 400
    _assert_documented(spec, "/v1/payment_intents/{id}/capture", "post", 400, again.json())
    # a decline: 402 carrying the payment
    declined = stripe_a.post(
        "payment_intents",
        {
            "amount": 2_000,
            "currency": "usd",
            "payment_method": "pm_card_chargeDeclined",
            "confirm": True,
        },
    )
    assert declined.status_code == 402
    _assert_documented(spec, "/v1/payment_intents", "post", 402, declined.json())
    # refund: 200
    refund = stripe_a.post("refunds", {"payment_intent": intent})
    _assert_documented(spec, "/v1/refunds", "post", 200, stripe_a.ok(refund))
    # delete a customer: 200, the deleted stub; retrieving it answers the same shape
    customer = stripe_a.ok(stripe_a.post("customers", {"email": "gone@shop.test"}))["id"]
    deleted = stripe_a.delete(f"customers/{customer}")
    _assert_documented(spec, "/v1/customers/{id}", "delete", 200, stripe_a.ok(deleted))
    retrieved = stripe_a.get(f"customers/{customer}")
    _assert_documented(spec, "/v1/customers/{id}", "get", 200, stripe_a.ok(retrieved))
    # 404 and 401
    missing = stripe_a.get("charges/ch_nope")
    assert missing.status_code == 404
    _assert_documented(spec, "/v1/charges/{id}", "get", 404, missing.json())
    anonymous = Client().get("/v1/charges")
    assert anonymous.status_code == 401
    _assert_documented(spec, "/v1/charges", "get", 401, anonymous.json())


# --- Docs pages ------------------------------------------------------------------------


class _Assets(HTMLParser):
    """The URLs a page loads: script `src` and link `href`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_swagger_ui_is_served_from_local_static_files_only(client: Client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.content.decode())
    assert parser.urls, "no assets found: the page changed shape"
    for url in parser.urls:
        assert not re.match(r"^(https?:)?//", url), f"{url} is not served by PayLab"
        assert url.startswith(settings.STATIC_URL), url
        assert finders.find(url.removeprefix(settings.STATIC_URL)), f"{url} does not exist"
    assert "/api/schema/" in response.content.decode()
