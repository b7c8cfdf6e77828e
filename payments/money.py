"""Currencies: the one exponent table, minimum charges, formatting and parsing.

Owns DESIGN rule 1: money is an integer count of minor units in a lower-case
ISO 4217 currency, and the exponent comes from `CURRENCY_EXPONENTS` and
nowhere else. Everything here is integer arithmetic; no float or Decimal
touches an amount.

Source: https://docs.stripe.com/currencies (presentment currencies,
zero-decimal and three-decimal lists, special cases, minimum charge amounts).
The exponents are those Stripe's API uses for `amount`, which differ from
ISO 4217 in two places: ISK is zero-decimal in ISO but Stripe keeps it
two-decimal for backwards compatibility (amounts must be divisible by 100),
and MGA has two minor units in ISO but Stripe treats it as zero-decimal.
"""

from __future__ import annotations

import re

from config.errors import InvalidRequestError


def _codes(text: str) -> list[str]:
    return text.split()


_ZERO_DECIMAL = _codes("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")

# Stripe accepts these with three decimals but requires the last digit to be 0
# (amounts rounded to the nearest ten) for its payment partners.
_THREE_DECIMAL = _codes("bhd jod kwd omr tnd")

# HUF and TWD charge with two decimals but pay out in whole units; ISK: see above.
_TWO_DECIMAL = _codes(
    "usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd bwp "
    "byn bzd cad cdf chf cny cop crc cve czk dkk dop dzd egp etb eur fjd fkp gbp gel gip "
    "gmd gtq gyd hkd hnl htg huf idr ils inr isk jmd kes kgs khr kyd kzt lak lbp lkr lrd "
    "lsl mad mdl mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen "
    "pgk php pkr pln qar ron rsd rub sar sbd scr sek sgd shp sle sos srd std szl thb tjs "
    "top try ttd twd tzs uah uyu uzs wst xcd yer zar zmw"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL, 2),
    **dict.fromkeys(_ZERO_DECIMAL, 0),
    **dict.fromkeys(_THREE_DECIMAL, 3),
}

# Stripe's published minimums, in minor units. Stripe's real rule is the
# equivalent of the settlement currency's minimum at the day's exchange rate;
# PayLab has no rates, so `minimum_amount` falls back to half a major unit for
# unlisted decimal currencies and to JPY's 50 for unlisted zero-decimal ones.
MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}

# Stripe's `amount` takes at most eight digits (99999999, i.e. 999,999.99 USD).
MAXIMUM_AMOUNT = 99_999_999

_DECIMAL = re.compile(r"(?P<sign>[+-]?)(?P<whole>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d*))?")


class UnknownCurrency(InvalidRequestError, ValueError):
    """A currency Stripe does not support; the API renders it as a 400 on `currency`."""

    def __init__(self, code: str) -> None:
        super().__init__(f"Invalid currency: {code}.", param="currency")
        self.currency = code


def validate_currency(code: str) -> str:
    """The lower-case code, or `UnknownCurrency`."""
    currency = code.lower()
    if currency not in CURRENCY_EXPONENTS:
        raise UnknownCurrency(code)
    return currency


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[validate_currency(currency)]


def minimum_amount(currency: str) -> int:
    """The smallest amount, in minor units, Stripe lets a charge in `currency` have."""
    currency = validate_currency(currency)
    if currency in MINIMUM_CHARGE:
        return MINIMUM_CHARGE[currency]
    places = CURRENCY_EXPONENTS[currency]
    return 50 if places == 0 else 5 * 10 ** (places - 1)


def format_amount(amount: int, currency: str) -> str:
    """'12.34 USD', '1,200 JPY', '1.234 KWD', '-0.05 EUR'."""
    currency = validate_currency(currency)
    places = CURRENCY_EXPONENTS[currency]
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**places)
    fraction = f".{minor:0{places}d}" if places else ""
    return f"{sign}{major:,}{fraction} {currency.upper()}"


def to_minor(major: str, currency: str) -> int:
    """Parse a decimal string such as '12.34' or '1,200' exactly into minor units.

    More decimals than the currency has raise `ValueError` unless they are
    trailing zeros ('12.340' USD is 1234; '12.345' USD is an error).
    """
    places = exponent(currency)
    match = _DECIMAL.fullmatch(major.strip())
    if match is None or not (match["whole"] or match["frac"]):
        raise ValueError(f"Not an amount: {major!r}.")
    whole = match["whole"].replace(",", "") or "0"
    frac = match["frac"] or ""
    if len(frac) > places:
        if frac[places:].strip("0"):
            raise ValueError(
                f"{currency.upper()} amounts have at most {places} decimal places: {major!r}."
            )
        frac = frac[:places]
    minor = int(whole) * 10**places + int(frac.ljust(places, "0") or "0")
    return -minor if match["sign"] == "-" else minor


def percent_fee(amount: int, basis_points: int) -> int:
    """`amount` * `basis_points` / 10,000 in minor units, halves rounded up.

    A negative amount gives the negated fee of its absolute value (halves away
    from zero), so a fee and its reversal always cancel in the ledger.
    """
    product = amount * basis_points
    quotient, remainder = divmod(abs(product), 10_000)
    if 2 * remainder >= 10_000:
        quotient += 1
    return -quotient if product < 0 else quotient
