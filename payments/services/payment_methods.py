"""Payment methods: cards (from raw test numbers or `pm_card_*` tokens),
UPI and wallets; attach and detach.

The card number and CVC are used here, in memory, to find the test card's
behaviour, the brand, last4 and the keyed fingerprint — and dropped: no row,
event or log line ever holds them (DESIGN rule 5).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from config.errors import CardError, InvalidRequestError
from payments import cards, ids, presenters
from payments.errors import missing
from payments.models import PaymentMethod
from payments.services import batch
from payments.services.customers import get_customer
from payments.services.metadata import merge_metadata
from payments.services.records import append_event

_DIGITS = re.compile(r"^\d+$")


def _behaviour(card: cards.TestCard) -> dict[str, Any]:
    """What later steps need to know of the test card; never its number."""
    return {
        key: value
        for key, value in card.behaviour().items()
        if value not in (None, False, "normal")
        and key not in ("brand", "funding", "country", "description")
    }


def _card_error(code: str | None, message: str, param: str) -> CardError:
    return cards.CardDataError(code or "invalid_number", message, param)


def build_card(
    *,
    merchant: Merchant,
    card: dict[str, Any],
    billing_details: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    now: datetime,
    param: str = "card",
) -> PaymentMethod:
    """A card payment method from raw card data (not yet saved)."""
    number = cards.normalize(str(card.get("number") or ""))
    if not number:
        raise InvalidRequestError(
            f"Missing required param: {param}[number].",
            code="parameter_missing",
            param=f"{param}[number]",
        )
    try:
        test_card = cards.resolve(number)
    except cards.InvalidCardNumber as error:
        raise _card_error(error.code, error.message, f"{param}[number]") from None
    try:
        exp_month = int(card.get("exp_month") or 0)
        exp_year = int(card.get("exp_year") or 0)
    except (TypeError, ValueError):
        raise _card_error(
            "invalid_expiry_month",
            "Your card's expiration month is invalid.",
            f"{param}[exp_month]",
        ) from None
    if exp_year and exp_year < 100:
        exp_year += 2000
    try:
        cards.check_expiry(exp_month, exp_year, now.date())
    except cards.CardDataError as error:
        raise _card_error(error.code, error.message, f"{param}[{error.param}]") from None
    cvc = str(card.get("cvc") or "")
    if cvc and (not _DIGITS.match(cvc) or len(cvc) not in (3, 4)):
        raise _card_error("invalid_cvc", "Your card's security code is invalid.", f"{param}[cvc]")
    return PaymentMethod(
        id=ids.new_id("pm", now),
        merchant=merchant,
        type=PaymentMethod.Type.CARD,
        brand=test_card.brand,
        last4=cards.last4(number),
        bin=number[:6],
        exp_month=exp_month,
        exp_year=exp_year,
        funding=test_card.funding,
        country=test_card.country,
        fingerprint=cards.fingerprint(number, settings.CARD_FINGERPRINT_KEY),
        behaviour=_behaviour(test_card),
        billing_details=billing_details or {},
        metadata=merge_metadata({}, metadata),
        created=now,
    )


def build_from_token(
    *, merchant: Merchant, token: str, now: datetime, param: str = "payment_method"
) -> PaymentMethod:
    """Stripe's `pm_card_visa`-style test payment methods: a fresh method each time."""
    number = cards.PM_CARDS.get(token)
    if number is None:
        raise missing("PaymentMethod", token, param=param)
    return build_card(
        merchant=merchant,
        card={"number": number, "exp_month": 12, "exp_year": now.year + 3, "cvc": "123"},
        now=now,
        param=param,
    )


def get_payment_method(
    *, merchant: Merchant, reference: str, now: datetime, param: str = "payment_method"
) -> PaymentMethod:
    """A payment method by id (own merchant only) or a `pm_card_*` token (saved)."""
    if reference in cards.PM_CARDS:
        pm = build_from_token(merchant=merchant, token=reference, now=now, param=param)
        batch.insert([pm])
        return pm
    found = batch.select_one(
        PaymentMethod, "id = %s AND merchant_id = %s", [reference, merchant.pk]
    )
    if found is None:
        raise missing("PaymentMethod", reference, param=param)
    return found


# A VPA is `handle@provider` (NPCI): the handle letters, digits, `.`, `-`, `_`.
_VPA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}$")
WALLET_TYPES = ("paylab_wallet", "apple_pay", "google_pay")


def _details(data: Any, param: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """The sub-hash of a non-card method (`upi[vpa]`, `wallet[type]`), unknown keys refused."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequestError(f"Invalid {param}: must be a hash.", param=param)
    for key in data:
        if key not in allowed:
            raise InvalidRequestError(
                f"Received unknown parameter: {param}[{key}].", param=f"{param}[{key}]"
            )
    return {key: str(value) for key, value in data.items() if value not in (None, "")}


def _build_upi(data: Any, param: str) -> dict[str, str]:
    details = _details(data, param, ("vpa",))
    vpa = details.get("vpa", "")
    if not vpa:
        raise InvalidRequestError(
            f"Missing required param: {param}[vpa].",
            code="parameter_missing",
            param=f"{param}[vpa]",
        )
    if not _VPA.match(vpa):
        raise InvalidRequestError(
            f"Invalid {param}[vpa]: a UPI VPA looks like name@bank "
            "(test VPAs: success@paylab, failure@paylab, slow@paylab).",
            param=f"{param}[vpa]",
        )
    return {"vpa": vpa.lower()}


def _build_wallet(data: Any, param: str) -> dict[str, str]:
    details = _details(data, param, ("type",))
    kind = details.get("type", "paylab_wallet")
    if kind not in WALLET_TYPES:
        raise InvalidRequestError(
            f"Invalid {param}[type]: must be one of {', '.join(WALLET_TYPES)}.",
            param=f"{param}[type]",
        )
    return {"type": kind}


def build_payment_method(
    *,
    merchant: Merchant,
    type: str,
    data: Any,
    billing_details: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    now: datetime,
    prefix: str = "",
) -> PaymentMethod:
    """A payment method of `type` from its sub-hash `data` (`card`, `upi`,
    `wallet`), not yet saved. `prefix` names where the request put it
    (`payment_method_data`), so every error names the exact field."""
    param = f"{prefix}[{type}]" if prefix else type
    if type == PaymentMethod.Type.CARD:
        if not data:
            raise InvalidRequestError(
                f"Missing required param: {param}.", code="parameter_missing", param=param
            )
        if isinstance(data, dict) and set(data) == {"token"}:
            return build_from_token(
                merchant=merchant, token=str(data["token"]), now=now, param=f"{param}[token]"
            )
        if not isinstance(data, dict):
            raise InvalidRequestError(f"Invalid {param}: must be a hash.", param=param)
        return build_card(
            merchant=merchant,
            card=data,
            billing_details=billing_details,
            metadata=metadata,
            now=now,
            param=param,
        )
    builders: dict[str, Callable[[Any, str], dict[str, str]]] = {
        PaymentMethod.Type.UPI: _build_upi,
        PaymentMethod.Type.WALLET: _build_wallet,
    }
    if type not in builders:
        name = f"{prefix}[type]" if prefix else "type"
        raise InvalidRequestError(f"Invalid {name}: must be one of card, upi, wallet.", param=name)
    return PaymentMethod(
        id=ids.new_id("pm", now),
        merchant=merchant,
        type=type,
        details=builders[type](data, param),
        billing_details=billing_details or {},
        metadata=merge_metadata({}, metadata),
        created=now,
    )


@transaction.atomic
def payment_method_create(
    *,
    merchant: Merchant,
    type: str,
    data: Any = None,
    billing_details: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    now: datetime | None = None,
) -> PaymentMethod:
    """Create a payment method (card, upi, wallet) from its sub-hash `data`."""
    pm = build_payment_method(
        merchant=merchant,
        type=type,
        data=data,
        billing_details=billing_details,
        metadata=metadata,
        now=now or timezone.now(),
    )
    pm.save(force_insert=True)
    return pm


@transaction.atomic
def payment_method_attach(
    *, merchant: Merchant, payment_method_id: str, customer_id: str, now: datetime | None = None
) -> PaymentMethod:
    """Attach to a customer; appends `payment_method.attached`."""
    now = now or timezone.now()
    pm = (
        PaymentMethod.objects.select_for_update()
        .filter(pk=payment_method_id, merchant=merchant)
        .first()
    )
    if pm is None:
        raise missing("PaymentMethod", payment_method_id)
    customer = get_customer(merchant_id=merchant.pk, customer_id=customer_id)
    if pm.customer_id and pm.customer_id != customer.id:
        raise InvalidRequestError(
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
        )
    pm.customer = customer
    pm.save(update_fields=["customer"])
    append_event(
        merchant_id=merchant.pk,
        type="payment_method.attached",
        data=presenters.payment_method(pm),
        now=now,
    )
    return pm


@transaction.atomic
def payment_method_detach(
    *, merchant: Merchant, payment_method_id: str, now: datetime | None = None
) -> PaymentMethod:
    """Detach from its customer; appends `payment_method.detached`."""
    now = now or timezone.now()
    pm = (
        PaymentMethod.objects.select_for_update()
        .filter(pk=payment_method_id, merchant=merchant)
        .first()
    )
    if pm is None:
        raise missing("PaymentMethod", payment_method_id)
    if pm.customer_id is None:
        raise InvalidRequestError(
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            code="payment_method_unexpected_state",
        )
    pm.customer = None
    pm.save(update_fields=["customer"])
    append_event(
        merchant_id=merchant.pk,
        type="payment_method.detached",
        data=presenters.payment_method(pm),
        now=now,
    )
    return pm
