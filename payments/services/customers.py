"""Customers: create, update, delete (soft: Stripe answers `deleted: true`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from payments import ids, presenters
from payments.errors import missing
from payments.models import Customer
from payments.services import batch
from payments.services.metadata import merge_metadata
from payments.services.records import append_event

CUSTOMER_FIELDS = ("email", "name", "phone", "description")


def get_customer(*, merchant_id: int, customer_id: str, lock: bool = False) -> Customer:
    customer = batch.select_one(
        Customer,
        "id = %s AND merchant_id = %s AND deleted_at IS NULL",
        [customer_id, merchant_id],
        lock=lock,
    )
    if customer is None:
        raise missing("customer", customer_id, param="customer")
    return customer


@transaction.atomic
def customer_create(
    *,
    merchant: Merchant,
    fields: dict[str, Any],
    metadata: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Customer:
    """Create a customer; appends `customer.created`."""
    now = now or timezone.now()
    customer = Customer(
        id=ids.new_id("cus", now),
        merchant=merchant,
        metadata=merge_metadata({}, metadata),
        created=now,
        **{k: v or "" for k, v in fields.items() if k in CUSTOMER_FIELDS},
    )
    customer.save(force_insert=True)
    append_event(
        merchant_id=merchant.pk,
        type="customer.created",
        data=presenters.customer(customer),
        now=now,
    )
    return customer


@transaction.atomic
def customer_update(
    *,
    merchant: Merchant,
    customer_id: str,
    fields: dict[str, Any],
    metadata: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Customer:
    """Update the given fields; appends `customer.updated`."""
    now = now or timezone.now()
    customer = get_customer(merchant_id=merchant.pk, customer_id=customer_id, lock=True)
    for name, value in fields.items():
        if name in CUSTOMER_FIELDS:
            setattr(customer, name, value or "")
    customer.metadata = merge_metadata(customer.metadata, metadata)
    customer.save()
    append_event(
        merchant_id=merchant.pk,
        type="customer.updated",
        data=presenters.customer(customer),
        now=now,
    )
    return customer


@transaction.atomic
def customer_delete(
    *, merchant: Merchant, customer_id: str, now: datetime | None = None
) -> Customer:
    """Mark deleted (payments keep pointing at it); appends `customer.deleted`."""
    now = now or timezone.now()
    customer = get_customer(merchant_id=merchant.pk, customer_id=customer_id, lock=True)
    snapshot = presenters.customer(customer)
    customer.deleted_at = now
    customer.save(update_fields=["deleted_at"])
    append_event(merchant_id=merchant.pk, type="customer.deleted", data=snapshot, now=now)
    return customer
