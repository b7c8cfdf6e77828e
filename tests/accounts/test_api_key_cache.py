"""The per-process API key cache: fewer queries, never a revoked key let in
by this process, and other processes' changes seen within the TTL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts import services
from accounts.models import ApiKey
from config.errors import AuthenticationError
from tests.conftest import MerchantWithKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def cache_on(settings: Settings) -> Iterator[None]:
    settings.PAYLAB_API_KEY_CACHE_SECONDS = 5.0
    services.api_key_cache_forget()
    yield
    services.api_key_cache_forget()


def test_a_cached_key_costs_no_query(merchant_a: MerchantWithKey) -> None:
    # Given a key authenticated once
    now = timezone.now()
    services.api_key_authenticate(merchant_a.secret, now=now)
    # When it is presented again within the TTL
    with CaptureQueriesContext(connection) as queries:
        api_key = services.api_key_authenticate(merchant_a.secret, now=now + timedelta(seconds=1))
    # Then no query was made
    assert api_key.merchant_id == merchant_a.merchant.pk
    assert len(queries.captured_queries) == 0


def test_revoking_in_this_process_takes_effect_at_once(merchant_a: MerchantWithKey) -> None:
    api_key = services.api_key_authenticate(merchant_a.secret)
    services.api_key_revoke(merchant=merchant_a.merchant, key_id=api_key.pk)
    with pytest.raises(AuthenticationError, match="revoked"):
        services.api_key_authenticate(merchant_a.secret)


def test_rolling_in_this_process_stops_the_old_key_at_once(merchant_a: MerchantWithKey) -> None:
    api_key = services.api_key_authenticate(merchant_a.secret)
    issued = services.api_key_roll(merchant=merchant_a.merchant, key_id=api_key.pk)
    with pytest.raises(AuthenticationError):
        services.api_key_authenticate(merchant_a.secret)
    assert services.api_key_authenticate(issued.secret).pk == issued.api_key.pk


def test_a_revoke_by_another_process_is_seen_within_the_ttl(merchant_a: MerchantWithKey) -> None:
    # Given a cached key
    now = timezone.now()
    api_key = services.api_key_authenticate(merchant_a.secret, now=now)
    # When another process revokes it (a row update this process never saw)
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=now)
    # Then this process still accepts it inside the TTL, and refuses it after
    services.api_key_authenticate(merchant_a.secret, now=now + timedelta(seconds=4))
    with pytest.raises(AuthenticationError, match="revoked"):
        services.api_key_authenticate(merchant_a.secret, now=now + timedelta(seconds=6))


def test_a_scheduled_expiry_is_exact_even_when_cached(merchant_a: MerchantWithKey) -> None:
    # Given a key rolled with the old one kept for 2 seconds, then cached
    now = timezone.now()
    api_key = services.api_key_authenticate(merchant_a.secret, now=now)
    services.api_key_roll(
        merchant=merchant_a.merchant, key_id=api_key.pk, keep_old_for=timedelta(seconds=2), now=now
    )
    services.api_key_authenticate(merchant_a.secret, now=now + timedelta(seconds=1))
    # Then the old key stops at its expiry, not at the end of the TTL
    with pytest.raises(AuthenticationError, match="expired"):
        services.api_key_authenticate(merchant_a.secret, now=now + timedelta(seconds=2.5))
