"""The merchant API as a Stripe client sees it: form-encoded bodies with
bracketed nesting (what the official libraries send) or JSON, and helpers that
make payments through the API itself.

Every payment here is made by calling the API, so it has its events, charges
and ledger postings exactly as a merchant's would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.http import HttpResponse
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from tests.conftest import MerchantWithKey

Params = Mapping[str, Any]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_pairs(params: Params, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: `metadata[order]=42`, `expand[0]=customer`,
    `payment_method_data[card][number]=…`."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(form_pairs(value, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    pairs.extend(form_pairs(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", _scalar(item)))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def form_encode(params: Params) -> str:
    return urlencode(form_pairs(params))


@dataclass
class Stripe:
    """A merchant's API client speaking Stripe's wire format."""

    client: APIClient

    def post(
        self,
        path: str,
        params: Params | None = None,
        *,
        json: bool = False,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        url = path if path.startswith("/") else f"/v1/{path}"
        if json:
            return self.client.post(url, dict(params or {}), format="json", headers=headers or {})
        return self.client.post(
            url,
            form_encode(params or {}),
            content_type="application/x-www-form-urlencoded",
            headers=headers or {},
        )

    def get(self, path: str, params: Params | None = None) -> HttpResponse:
        url = path if path.startswith("/") else f"/v1/{path}"
        query = form_encode(params or {})
        return self.client.get(f"{url}?{query}" if query else url)

    def delete(self, path: str) -> HttpResponse:
        url = path if path.startswith("/") else f"/v1/{path}"
        return self.client.delete(url)

    def ok(self, response: HttpResponse) -> dict[str, Any]:
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def pay(
        self,
        card: str = "pm_card_visa",
        *,
        amount: int = 1000,
        currency: str = "usd",
        manual: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Create and confirm a payment with a `pm_card_*` test card; the
        response body (200 or the 402's error envelope)."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "payment_method": card,
            "confirm": True,
            **extra,
        }
        if manual:
            params["capture_method"] = "manual"
        body: dict[str, Any] = self.post("payment_intents", params).json()
        return body


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Settings) -> None:
    # Tests fire far more than 100 requests a second, and in embedded mode
    # the per-process counters outlive a test whose key id SQLite reuses in
    # the next one. test_rate_limit.py sets a merchant's own limit instead.
    settings.PAYLAB_RATE_LIMIT_DEFAULT = 1_000_000


@pytest.fixture
def stripe_a(merchant_a: MerchantWithKey) -> Stripe:
    return Stripe(merchant_a.api())


@pytest.fixture
def stripe_b(merchant_b: MerchantWithKey) -> Stripe:
    return Stripe(merchant_b.api())
