"""Reads of accounts data, always scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.models import ApiKey, Merchant
from accounts.roles import can_view_merchant, merchant_scope


def merchants_for_user(user: Any) -> QuerySet[Merchant]:
    scope = merchant_scope(user)
    qs = Merchant.objects.all()
    return qs if scope is None else qs.filter(pk=scope)


def merchant_for_user(user: Any, merchant_id: int) -> Merchant:
    """The merchant, or 404 when the user may not see it (tenancy is a 404)."""
    if not can_view_merchant(user, merchant_id):
        raise Http404("No such merchant.")
    try:
        return Merchant.objects.get(pk=merchant_id)
    except Merchant.DoesNotExist:
        raise Http404("No such merchant.") from None


def api_keys_for_merchant(merchant: Merchant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(merchant=merchant).select_related("created_by")


def merchants_with_counts() -> QuerySet[Merchant]:
    return Merchant.objects.annotate(
        user_count=Count("users", distinct=True),
        active_key_count=Count(
            "api_keys", filter=Q(api_keys__revoked_at__isnull=True), distinct=True
        ),
    )
