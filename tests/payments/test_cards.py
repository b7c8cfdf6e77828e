"""Stripe's test cards as data: every row consistent, every pm_card_* resolvable."""

from __future__ import annotations

from datetime import date

import pytest

from config.errors import CardError
from payments.cards import (
    PM_CARDS,
    TEST_CARDS,
    CardDataError,
    InvalidCardNumber,
    TestCard,
    brand_of,
    check_expiry,
    fingerprint,
    last4,
    luhn_valid,
    normalize,
    resolve,
)

INCORRECT_NUMBER = "4242424242424241"
VALID_TEST_CARDS = [number for number in TEST_CARDS if number != INCORRECT_NUMBER]


@pytest.mark.parametrize("number", VALID_TEST_CARDS)
def test_every_test_card_passes_luhn_and_has_its_own_brand(number: str) -> None:
    card = TEST_CARDS[number]
    assert card.number == number
    assert luhn_valid(number)
    assert brand_of(number) == card.brand


@pytest.mark.parametrize("number", VALID_TEST_CARDS)
def test_every_valid_test_card_resolves_to_its_row(number: str) -> None:
    assert resolve(number) is TEST_CARDS[number]


def test_the_incorrect_number_card_fails_luhn_and_is_rejected() -> None:
    assert not luhn_valid(INCORRECT_NUMBER)
    assert TEST_CARDS[INCORRECT_NUMBER].error_code == "incorrect_number"
    with pytest.raises(InvalidCardNumber):
        resolve(INCORRECT_NUMBER)


@pytest.mark.parametrize(("pm_id", "number"), sorted(PM_CARDS.items()))
def test_every_pm_card_resolves_to_a_test_card(pm_id: str, number: str) -> None:
    assert pm_id.startswith("pm_card_")
    assert number in TEST_CARDS
    assert resolve(number) is TEST_CARDS[number]


@pytest.mark.parametrize(
    ("pm_id", "expected"),
    [
        ("pm_card_visa", {"brand": "visa", "error_code": None}),
        ("pm_card_visa_debit", {"brand": "visa", "funding": "debit"}),
        ("pm_card_mastercard_prepaid", {"brand": "mastercard", "funding": "prepaid"}),
        ("pm_card_amex", {"brand": "amex"}),
        ("pm_card_unionpay", {"brand": "unionpay"}),
        (
            "pm_card_visa_chargeDeclined",
            {"error_code": "card_declined", "decline_code": "generic_decline"},
        ),
        (
            "pm_card_visa_chargeDeclinedInsufficientFunds",
            {"decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
        ),
        ("pm_card_visa_chargeDeclinedLostCard", {"decline_code": "lost_card"}),
        ("pm_card_visa_chargeDeclinedStolenCard", {"decline_code": "stolen_card"}),
        (
            "pm_card_chargeDeclinedExpiredCard",
            {"error_code": "expired_card", "decline_code": "expired_card"},
        ),
        (
            "pm_card_chargeDeclinedIncorrectCvc",
            {"error_code": "incorrect_cvc", "message": "Your card's security code is incorrect."},
        ),
        ("pm_card_chargeDeclinedProcessingError", {"error_code": "processing_error"}),
        (
            "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
            {"decline_code": "card_velocity_exceeded"},
        ),
        (
            "pm_card_radarBlock",
            {"blocked": True, "decline_code": "fraudulent", "risk_level": "highest"},
        ),
        ("pm_card_riskLevelHighest", {"blocked": False, "risk_level": "highest"}),
        ("pm_card_riskLevelElevated", {"risk_level": "elevated", "error_code": None}),
        (
            "pm_card_createDispute",
            {"dispute_reason": "fraudulent", "dispute_status": "needs_response"},
        ),
        ("pm_card_createDisputeProductNotReceived", {"dispute_reason": "product_not_received"}),
        ("pm_card_createDisputeInquiry", {"dispute_status": "warning_needs_response"}),
        ("pm_card_createIssuerFraudRecord", {"early_fraud_warning": True, "dispute_reason": None}),
        ("pm_card_refundFail", {"refund_fails": True, "error_code": None}),
        ("pm_card_threeDSecure2Required", {"three_ds": "required", "error_code": None}),
        ("pm_card_authenticationRequired", {"three_ds": "required"}),
        (
            "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds",
            {"three_ds": "required_then_decline", "decline_code": "insufficient_funds"},
        ),
        ("pm_card_threeDSecureOptional", {"three_ds": "optional", "error_code": None}),
    ],
)
def test_pm_card_behaviour_follows_stripes_table(pm_id: str, expected: dict[str, object]) -> None:
    card = resolve(PM_CARDS[pm_id])
    assert {name: getattr(card, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),  # 13-digit Visa
        ("5454545454545454", "mastercard"),
        ("2720990000000007", "mastercard"),
        ("340000000000009", "amex"),
        ("6011000000000012", "discover"),
        ("6445644564456445", "discover"),
        ("6500000000000002", "discover"),
        ("30000000000004", "diners"),
        ("38520000023237", "diners"),
        ("3530111333300000", "jcb"),
        ("6212345678901232", "unionpay"),
    ],
)
def test_unknown_valid_numbers_succeed_as_us_credit_cards_of_their_brand(
    number: str, brand: str
) -> None:
    assert number not in TEST_CARDS
    card = resolve(number)
    assert (card.brand, card.funding, card.country) == (brand, "credit", "US")
    assert card.succeeds
    assert card.three_ds is None and card.dispute_reason is None and not card.refund_fails


@pytest.mark.parametrize(
    "number",
    [
        "",
        "abcd",
        "4242-4242-4242-424x",
        "4242424242424241",  # Luhn
        "4242424242424",  # 13 digits, wrong check digit
        "424242424242",  # too short for any network
        "42424242424242424242",  # Luhn-valid, too long for any network
        "1234567812345670",  # Luhn-valid, but no network issues numbers starting 1
        "3782822463100052",  # Luhn-valid, but Amex numbers have 15 digits
        "5555555555554",  # Luhn-valid, but Mastercard numbers have 16 digits
        "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",  # non-ASCII digits
    ],
)
def test_invalid_numbers_raise_incorrect_number(number: str) -> None:
    with pytest.raises(InvalidCardNumber) as caught:
        resolve(number)
    error = caught.value
    assert isinstance(error, CardError)
    assert (error.code, error.message, error.param) == (
        "incorrect_number",
        "Your card number is incorrect.",
        "number",
    )
    assert error.as_dict()["type"] == "card_error"
    assert error.status == 402


def test_resolve_accepts_the_spaces_and_dashes_people_type() -> None:
    assert resolve("4242 4242 4242 4242") is TEST_CARDS["4242424242424242"]
    assert resolve("4000-0000-0000-0002") is TEST_CARDS["4000000000000002"]


@pytest.mark.parametrize(
    ("raw", "digits"),
    [("4242 4242 4242 4242", "4242424242424242"), ("3782-822463-10005", "378282246310005")],
)
def test_normalize_and_last4(raw: str, digits: str) -> None:
    assert normalize(raw) == digits
    assert last4(raw) == digits[-4:]


def test_brand_of_unknown_prefixes_is_none() -> None:
    assert brand_of("1234567812345670") is None
    assert brand_of("not a number") is None


def test_test_card_rows_are_internally_consistent() -> None:
    # Given the table's invariants are checked in TestCard.__post_init__,
    # when a row breaks one, then building it fails.
    with pytest.raises(ValueError, match="decline_code"):
        TestCard(
            number="4242424242424242",
            brand="visa",
            funding="credit",
            country="US",
            description="bad",
            error_code="incorrect_cvc",
            message="Your card's security code is incorrect.",
            decline_code="insufficient_funds",
        )
    with pytest.raises(ValueError, match="go together"):
        TestCard(
            number="4242424242424242",
            brand="visa",
            funding="credit",
            country="US",
            description="bad",
            dispute_reason="fraudulent",
        )
    with pytest.raises(ValueError, match="country"):
        TestCard(
            number="4242424242424242", brand="visa", funding="credit", country="us", description=""
        )


def test_the_full_number_stays_out_of_repr_and_behaviour() -> None:
    card = resolve("4000000000009995")
    assert "4000000000009995" not in repr(card)
    behaviour = card.behaviour()
    assert "number" not in behaviour
    assert behaviour["decline_code"] == "insufficient_funds"
    assert card.last4 == "9995"


def test_fingerprint_is_stable_keyed_and_short() -> None:
    first = fingerprint("4242424242424242", "key-one")
    assert first == fingerprint("4242 4242 4242 4242", "key-one")
    assert len(first) == 16 and first.isalnum()
    assert first != fingerprint("4242424242424242", "key-two")
    assert first != fingerprint("4000056655665556", "key-one")


def test_fingerprint_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError):
        fingerprint("4242424242424242", "")


TODAY = date(2026, 5, 17)


@pytest.mark.parametrize(
    ("exp_month", "exp_year"),
    [(5, 2026), (12, 2026), (1, 2027), (12, 2099)],
)
def test_check_expiry_accepts_cards_valid_through_this_month(exp_month: int, exp_year: int) -> None:
    check_expiry(exp_month, exp_year, TODAY)


@pytest.mark.parametrize(
    ("exp_month", "exp_year", "code", "param"),
    [
        (0, 2030, "invalid_expiry_month", "exp_month"),
        (13, 2030, "invalid_expiry_month", "exp_month"),
        (13, 2020, "invalid_expiry_month", "exp_month"),  # the month is checked first
        (12, 2025, "invalid_expiry_year", "exp_year"),
        (4, 2026, "expired_card", "exp_month"),
    ],
)
def test_check_expiry_rejects_like_stripe(
    exp_month: int, exp_year: int, code: str, param: str
) -> None:
    with pytest.raises(CardDataError) as caught:
        check_expiry(exp_month, exp_year, TODAY)
    assert (caught.value.code, caught.value.param) == (code, param)
    assert caught.value.status == 402
