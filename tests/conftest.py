"""Shared fixtures: the fixed cast of users and merchants, and API clients.

The tenancy cast of every API and view module: merchant A's owner, merchant
A's viewer, merchant B's owner (who must get 404 on A's objects), plus the
three staff roles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Merchant, User

PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL- and Redis-only tests run whenever those are configured."""
    has_postgres = (os.environ.get("DATABASE_URL") or "").startswith(
        ("postgres://", "postgresql://")
    )
    has_redis = bool(os.environ.get("REDIS_URL"))
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(
                pytest.mark.skipif(not has_postgres, reason="needs DATABASE_URL=postgres://…")
            )
        if "redis" in item.keywords:
            item.add_marker(pytest.mark.skipif(not has_redis, reason="needs REDIS_URL=redis://…"))


@dataclass
class MerchantWithKey:
    merchant: Merchant
    secret: str

    def api(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret}")
        return client


def _merchant(name: str, slug: str) -> MerchantWithKey:
    merchant, issued = services.merchant_create_with_key(name=name, slug=slug)
    return MerchantWithKey(merchant=merchant, secret=issued.secret)


@pytest.fixture
def merchant_a(db: None) -> MerchantWithKey:
    return _merchant("Merchant A", "merchant-a")


@pytest.fixture
def merchant_b(db: None) -> MerchantWithKey:
    return _merchant("Merchant B", "merchant-b")


def _user(
    email: str, role: str, merchant: Merchant | None = None, level: str | None = None
) -> User:
    return services.user_create(
        email=email, password=PASSWORD, role=role, merchant=merchant, level=level
    )


@pytest.fixture
def admin_user(db: None) -> User:
    return _user("admin@paylab.test", "admin")


@pytest.fixture
def operator_user(db: None) -> User:
    return _user("operator@paylab.test", "operator")


@pytest.fixture
def viewer_user(db: None) -> User:
    return _user("viewer@paylab.test", "viewer")


@pytest.fixture
def owner_a(merchant_a: MerchantWithKey) -> User:
    return _user("owner@a.test", "merchant", merchant_a.merchant, "owner")


@pytest.fixture
def developer_a(merchant_a: MerchantWithKey) -> User:
    return _user("developer@a.test", "merchant", merchant_a.merchant, "developer")


@pytest.fixture
def viewer_a(merchant_a: MerchantWithKey) -> User:
    return _user("viewer@a.test", "merchant", merchant_a.merchant, "viewer")


@pytest.fixture
def owner_b(merchant_b: MerchantWithKey) -> User:
    return _user("owner@b.test", "merchant", merchant_b.merchant, "owner")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def api_a(merchant_a: MerchantWithKey) -> APIClient:
    return merchant_a.api()


@pytest.fixture
def api_b(merchant_b: MerchantWithKey) -> APIClient:
    return merchant_b.api()
