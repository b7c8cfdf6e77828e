"""Currencies: one exponent table, exact parsing and formatting, integer fees."""

from __future__ import annotations

import pytest

from config.errors import InvalidRequestError
from payments.money import (
    CURRENCY_EXPONENTS,
    MINIMUM_CHARGE,
    UnknownCurrency,
    exponent,
    format_amount,
    minimum_amount,
    percent_fee,
    to_minor,
    validate_currency,
)

ZERO_DECIMAL = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        ("jpy", 0),
        ("krw", 0),
        ("xof", 0),
        ("usd", 2),
        ("eur", 2),
        ("gbp", 2),
        ("isk", 2),  # Stripe keeps ISK two-decimal in the API
        ("huf", 2),
        ("kwd", 3),
        ("bhd", 3),
        ("tnd", 3),
        ("JPY", 0),
    ],
)
def test_exponent(currency: str, places: int) -> None:
    assert exponent(currency) == places


def test_the_table_holds_lower_case_codes_and_known_exponents_only() -> None:
    assert len(CURRENCY_EXPONENTS) > 135
    for code, places in CURRENCY_EXPONENTS.items():
        assert len(code) == 3 and code.isascii() and code.islower()
        assert places in (0, 2, 3)
    zero = {code for code, places in CURRENCY_EXPONENTS.items() if places == 0}
    three = {code for code, places in CURRENCY_EXPONENTS.items() if places == 3}
    assert zero == set(ZERO_DECIMAL.split())
    assert three == {"bhd", "jod", "kwd", "omr", "tnd"}


def test_validate_currency_lower_cases() -> None:
    assert validate_currency("USD") == "usd"
    assert validate_currency("eur") == "eur"


@pytest.mark.parametrize("code", ["xyz", "", "usdx", "us", "hrk", " usd"])
def test_unknown_currencies_are_rejected(code: str) -> None:
    with pytest.raises(UnknownCurrency) as caught:
        validate_currency(code)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, InvalidRequestError)
    assert error.param == "currency"
    assert error.status == 400


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [
        ("usd", 50),
        ("eur", 50),
        ("gbp", 30),
        ("jpy", 50),
        ("hkd", 400),
        ("mxn", 1000),
        ("USD", 50),
        ("cop", 50),  # unlisted two-decimal currency: half a unit
        ("kwd", 500),  # unlisted three-decimal currency: half a unit
        ("krw", 50),  # unlisted zero-decimal currency: JPY's floor
    ],
)
def test_minimum_amount(currency: str, minimum: int) -> None:
    assert minimum_amount(currency) == minimum


def test_every_listed_minimum_is_a_supported_currency() -> None:
    assert set(MINIMUM_CHARGE) <= set(CURRENCY_EXPONENTS)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "usd", "12.34 USD"),
        (5, "usd", "0.05 USD"),
        (0, "usd", "0.00 USD"),
        (123456789, "usd", "1,234,567.89 USD"),
        (-1234, "eur", "-12.34 EUR"),
        (1200, "jpy", "1,200 JPY"),
        (7, "jpy", "7 JPY"),
        (1234, "kwd", "1.234 KWD"),
        (1234567, "KWD", "1,234.567 KWD"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "usd", 1234),
        ("12.3", "usd", 1230),
        ("12", "usd", 1200),
        ("12.", "usd", 1200),
        (".5", "usd", 50),
        ("0.01", "usd", 1),
        ("12.340", "usd", 1234),  # trailing zeros are exact
        (" 7.00 ", "usd", 700),
        ("-1.50", "eur", -150),
        ("+1.50", "eur", 150),
        ("1,234,567.89", "usd", 123456789),
        ("1200", "jpy", 1200),
        ("1,200", "jpy", 1200),
        ("1.234", "kwd", 1234),
        ("1.2", "kwd", 1200),
        ("99999999999999999999.99", "usd", 9999999999999999999999),  # exact, no float
    ],
)
def test_to_minor_parses_exactly(text: str, currency: str, minor: int) -> None:
    assert to_minor(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.234", "usd"),
        ("1.5", "jpy"),
        ("1.2345", "kwd"),
        ("", "usd"),
        (".", "usd"),
        ("-", "usd"),
        ("abc", "usd"),
        ("1e3", "usd"),
        ("1,2", "usd"),
        ("12,34", "usd"),
        ("1.2.3", "usd"),
        ("1 000", "usd"),
    ],
)
def test_to_minor_rejects_what_is_not_an_exact_amount(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        to_minor(text, currency)


def test_to_minor_rejects_unknown_currencies() -> None:
    with pytest.raises(UnknownCurrency):
        to_minor("1.00", "xyz")


@pytest.mark.parametrize(
    ("amount", "currency"), [(0, "usd"), (1, "usd"), (123456789, "usd"), (1200, "jpy"), (1, "kwd")]
)
def test_format_then_parse_round_trips(amount: int, currency: str) -> None:
    text = format_amount(amount, currency).rsplit(" ", 1)[0]
    assert to_minor(text, currency) == amount


@pytest.mark.parametrize(
    ("amount", "basis_points", "fee"),
    [
        (10000, 290, 290),  # 2.9 % of 100.00
        (1000, 290, 29),
        (50, 290, 1),  # 1.45 → 1
        (150, 100, 2),  # 1.5 → 2: halves round up
        (250, 100, 3),  # 2.5 → 3, not banker's 2
        (149, 100, 1),  # 1.49 → 1
        (0, 290, 0),
        (1234, 0, 0),
        (1, 5000, 1),  # 0.5 → 1
        (1, 4999, 0),
        (-150, 100, -2),  # a reversal mirrors the fee
        (-250, 100, -3),
    ],
)
def test_percent_fee_rounds_half_up_with_integers(amount: int, basis_points: int, fee: int) -> None:
    assert percent_fee(amount, basis_points) == fee


def test_percent_fee_is_exact_for_huge_amounts() -> None:
    # Given an amount far beyond float precision, the fee is still exact.
    amount = 10**20 + 50
    assert percent_fee(amount, 100) == 10**18 + 1
    assert percent_fee(amount, 1) == 10**16  # 10**16 + 0.005 → rounds down
