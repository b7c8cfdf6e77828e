"""Stripe's test cards as data, and the card-number rules PayLab applies.

Owns: Luhn and brand (IIN) checks, the table of Stripe's test cards and
`pm_card_*` payment methods with the behaviour each one triggers (decline,
3-D Secure, dispute, early fraud warning, refund failure, Radar risk), expiry
validation, and the keyed fingerprint.

The card decides the issuer's answer (DESIGN "Test cards"); processor settings
add latency and failures on top elsewhere. Rule 5 is enforced by what this
module hands out, not by what it receives: callers persist brand, last4,
expiry, funding, country, fingerprint and `TestCard.behaviour()`, never the
number. A `TestCard` holds a number only in memory and keeps it out of its
repr, and no error raised here quotes it.

Source, checked 2026 against Stripe's testing page and the third-party
captures of it that the search index holds:
https://docs.stripe.com/testing (cards by brand, declined payments, fraud
prevention, disputes, refunds, 3-D Secure / regulatory cards) and
https://docs.stripe.com/radar/testing (risk levels).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, ClassVar, Literal, get_args

from config.errors import CardError

Brand = Literal["visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay"]
Funding = Literal["credit", "debit", "prepaid"]
# None: no 3DS. "required": challenge, then the card's outcome. "required_then_decline":
# challenge succeeds, then the issuer declines with the card's decline_code.
# "optional": 3DS supported, frictionless (no challenge).
ThreeDS = Literal["required", "required_then_decline", "optional"]
RiskLevel = Literal["normal", "elevated", "highest"]
DisputeStatus = Literal["needs_response", "warning_needs_response"]

# Stripe's customer-facing messages for card errors.
MSG_DECLINED = "Your card was declined."
MSG_INSUFFICIENT_FUNDS = "Your card has insufficient funds."
MSG_EXPIRED = "Your card has expired."
MSG_INCORRECT_CVC = "Your card's security code is incorrect."
MSG_PROCESSING_ERROR = "An error occurred while processing your card. Try again in a little bit."
MSG_INCORRECT_NUMBER = "Your card number is incorrect."
MSG_VELOCITY = (
    "Your card was declined for making repeated attempts too frequently "
    "or exceeding its amount limit."
)
MSG_INVALID_EXPIRY_MONTH = "Your card's expiration month is invalid."
MSG_INVALID_EXPIRY_YEAR = "Your card's expiration year is invalid."

_DIGITS = re.compile(r"[0-9]+")
_SEPARATORS = re.compile(r"[ \-]")

# (prefix length, lowest prefix, highest prefix, brand), longest prefixes first so
# that 2221-2720 and 6011 win over shorter overlapping ranges.
_IIN_RANGES: tuple[tuple[int, int, int, Brand], ...] = (
    (4, 2221, 2720, "mastercard"),
    (4, 3528, 3589, "jcb"),
    (4, 3095, 3095, "diners"),
    (4, 6011, 6011, "discover"),
    (3, 300, 305, "diners"),
    (3, 644, 649, "discover"),
    (2, 34, 34, "amex"),
    (2, 36, 36, "diners"),
    (2, 37, 37, "amex"),
    (2, 38, 39, "diners"),
    (2, 51, 55, "mastercard"),
    (2, 62, 62, "unionpay"),
    (2, 65, 65, "discover"),
    (1, 4, 4, "visa"),
)

# Lengths each network issues. UnionPay, Discover, JCB and Diners run to 19
# digits (Stripe lists a 19-digit UnionPay and a 14-digit Diners test card).
_LENGTHS: dict[Brand, frozenset[int]] = {
    "visa": frozenset({13, 16, 19}),
    "mastercard": frozenset({16}),
    "amex": frozenset({15}),
    "discover": frozenset(range(16, 20)),
    "diners": frozenset(range(14, 20)),
    "jcb": frozenset(range(16, 20)),
    "unionpay": frozenset(range(16, 20)),
}

_FINGERPRINT_LENGTH = 16
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class CardDataError(CardError):
    """Card details Stripe rejects before asking the issuer (`card_error`, 402)."""

    def __init__(self, code: str, message: str, param: str) -> None:
        super().__init__(message, code=code, param=param)


class InvalidCardNumber(CardDataError):
    """Not a number any network would issue: bad Luhn digit, length or IIN."""

    def __init__(self) -> None:
        super().__init__("incorrect_number", MSG_INCORRECT_NUMBER, "number")


@dataclass(frozen=True, slots=True)
class TestCard:
    """One card and how the simulated issuer, Radar and network treat it.

    `error_code`/`decline_code`/`message` are the issuer's answer (`decline_code`
    is the error code itself for expired_card, incorrect_cvc and
    processing_error, as in Stripe's API responses); with
    `three_ds == "required_then_decline"` that answer comes after a successful
    challenge. `blocked` is Radar blocking the payment (outcome type
    "blocked", decline code "fraudulent"), which happens before the issuer.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    number: str = field(repr=False)
    brand: Brand
    funding: Funding
    country: str
    description: str
    decline_code: str | None = None
    error_code: str | None = None
    message: str | None = None
    three_ds: ThreeDS | None = None
    dispute_reason: str | None = None
    dispute_status: DisputeStatus | None = None
    early_fraud_warning: bool = False
    refund_fails: bool = False
    risk_level: RiskLevel = "normal"
    blocked: bool = False

    def __post_init__(self) -> None:
        # The table below is data typed by hand; refuse an inconsistent row at import.
        problems = []
        if self.funding not in get_args(Funding):
            problems.append(f"funding {self.funding!r}")
        if not (len(self.country) == 2 and self.country.isascii() and self.country.isupper()):
            problems.append(f"country {self.country!r}")
        if self.three_ds is not None and self.three_ds not in get_args(ThreeDS):
            problems.append(f"three_ds {self.three_ds!r}")
        if self.risk_level not in get_args(RiskLevel):
            problems.append(f"risk_level {self.risk_level!r}")
        if (self.error_code is None) != (self.message is None):
            problems.append("error_code and message go together")
        if self.decline_code is not None and self.error_code not in (
            "card_declined",
            self.decline_code,
        ):
            problems.append("a decline_code needs error_code 'card_declined' or its own code")
        if (self.three_ds == "required_then_decline") != (
            self.three_ds is not None and self.error_code is not None
        ):
            problems.append("a 3DS card with an error must be 'required_then_decline'")
        if (self.dispute_reason is None) != (self.dispute_status is None):
            problems.append("dispute_reason and dispute_status go together")
        if self.blocked and self.decline_code != "fraudulent":
            problems.append("a Radar block declines as 'fraudulent'")
        if problems:
            raise ValueError(f"TestCard ••••{self.number[-4:]}: " + "; ".join(problems))

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def succeeds(self) -> bool:
        """Whether a payment with this card ends authorised (after 3DS, if any)."""
        return self.error_code is None

    def behaviour(self) -> dict[str, str | bool | None]:
        """Everything about the card except its number: safe to store and to log."""
        data = asdict(self)
        del data["number"]
        return data


def normalize(number: str) -> str:
    """The number without the spaces and dashes people type into forms."""
    return _SEPARATORS.sub("", number)


def luhn_valid(number: str) -> bool:
    digits = normalize(number)
    if not _DIGITS.fullmatch(digits):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand_of(number: str) -> Brand | None:
    """Stripe's brand string for the number's IIN, or None if no network issues it."""
    digits = normalize(number)
    if not _DIGITS.fullmatch(digits):
        return None
    for width, low, high, brand in _IIN_RANGES:
        if len(digits) >= width and low <= int(digits[:width]) <= high:
            return brand
    return None


def last4(number: str) -> str:
    return normalize(number)[-4:]


def fingerprint(number: str, key: str) -> str:
    """16 base62 characters of HMAC-SHA256(key, number): stable per key, not reversible.

    Keyed so that a leaked table of fingerprints cannot be matched against the
    ~10^9 numbers of a known BIN by hashing them all.
    """
    if not key:
        raise ValueError("fingerprint needs a non-empty key")
    digest = hmac.new(key.encode(), normalize(number).encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(_FINGERPRINT_LENGTH):
        value, rem = divmod(value, 62)
        chars.append(_BASE62[rem])
    return "".join(chars)


def resolve(number: str) -> TestCard:
    """The behaviour of a card number, or `InvalidCardNumber` (Stripe's `incorrect_number`).

    Stripe's own test numbers behave as documented; any other number that a
    network could issue succeeds as a US credit card of its brand.
    """
    digits = normalize(number)
    if not _DIGITS.fullmatch(digits):
        raise InvalidCardNumber
    brand = brand_of(digits)
    if brand is None or len(digits) not in _LENGTHS[brand] or not luhn_valid(digits):
        raise InvalidCardNumber
    known = TEST_CARDS.get(digits)
    if known is not None:
        return known
    return TestCard(
        number=digits,
        brand=brand,
        funding="credit",
        country="US",
        description=f"Any other valid {brand} number: succeeds.",
    )


def check_expiry(exp_month: int, exp_year: int, today: date) -> None:
    """Raise `CardDataError` unless the card is valid through the end of `exp_month`.

    Stripe's order of checks: a month outside 1-12, then a year already past,
    then a month already past in the current year (an expired card).
    """
    if not 1 <= exp_month <= 12:
        raise CardDataError("invalid_expiry_month", MSG_INVALID_EXPIRY_MONTH, "exp_month")
    if exp_year < today.year:
        raise CardDataError("invalid_expiry_year", MSG_INVALID_EXPIRY_YEAR, "exp_year")
    if exp_year == today.year and exp_month < today.month:
        raise CardDataError("expired_card", MSG_EXPIRED, "exp_month")


def _success(number: str, brand: Brand, funding: Funding, description: str) -> TestCard:
    return TestCard(
        number=number, brand=brand, funding=funding, country="US", description=description
    )


def _visa(number: str, description: str, country: str = "US", **behaviour: Any) -> TestCard:
    return TestCard(
        number=number,
        brand="visa",
        funding="credit",
        country=country,
        description=description,
        **behaviour,
    )


def _declined(number: str, decline_code: str, message: str, description: str) -> TestCard:
    return _visa(
        number,
        description,
        error_code="card_declined",
        decline_code=decline_code,
        message=message,
    )


def _error(number: str, error_code: str, message: str, description: str) -> TestCard:
    # Stripe's docs table leaves decline_code empty for these rows, but its API
    # responses repeat the code there (expired_card/expired_card), and
    # integrations branch on decline_code, so PayLab answers like the API.
    return _visa(
        number, description, error_code=error_code, decline_code=error_code, message=message
    )


_CARDS: tuple[TestCard, ...] = (
    # Cards by brand: every one succeeds.
    _success("4242424242424242", "visa", "credit", "Visa: succeeds."),
    _success("4000056655665556", "visa", "debit", "Visa debit: succeeds."),
    _success("5555555555554444", "mastercard", "credit", "Mastercard: succeeds."),
    _success("2223003122003222", "mastercard", "credit", "Mastercard 2-series: succeeds."),
    _success("5200828282828210", "mastercard", "debit", "Mastercard debit: succeeds."),
    _success("5105105105105100", "mastercard", "prepaid", "Mastercard prepaid: succeeds."),
    _success("378282246310005", "amex", "credit", "American Express: succeeds."),
    _success("371449635398431", "amex", "credit", "American Express: succeeds."),
    _success("6011111111111117", "discover", "credit", "Discover: succeeds."),
    _success("6011000990139424", "discover", "credit", "Discover: succeeds."),
    _success("6011981111111113", "discover", "debit", "Discover debit: succeeds."),
    _success("3056930009020004", "diners", "credit", "Diners Club: succeeds."),
    _success("36227206271667", "diners", "credit", "Diners Club, 14 digits: succeeds."),
    _success("3566002020360505", "jcb", "credit", "JCB: succeeds."),
    _success("6200000000000005", "unionpay", "credit", "UnionPay: succeeds."),
    _success("6200000000000047", "unionpay", "debit", "UnionPay debit: succeeds."),
    _success("6205500000000000004", "unionpay", "credit", "UnionPay, 19 digits: succeeds."),
    # Declined payments.
    _declined(
        "4000000000000002", "generic_decline", MSG_DECLINED, "Declined for no stated reason."
    ),
    _declined(
        "4000000000009995",
        "insufficient_funds",
        MSG_INSUFFICIENT_FUNDS,
        "Declined: insufficient funds.",
    ),
    _declined("4000000000009987", "lost_card", MSG_DECLINED, "Declined: reported lost."),
    _declined("4000000000009979", "stolen_card", MSG_DECLINED, "Declined: reported stolen."),
    _declined(
        "4000000000006975",
        "card_velocity_exceeded",
        MSG_VELOCITY,
        "Declined: the card's velocity limit is exceeded.",
    ),
    _error("4000000000000069", "expired_card", MSG_EXPIRED, "Declined: the card has expired."),
    _error("4000000000000127", "incorrect_cvc", MSG_INCORRECT_CVC, "Declined: the CVC is wrong."),
    _error(
        "4000000000000119",
        "processing_error",
        MSG_PROCESSING_ERROR,
        "Fails with a processing error.",
    ),
    # Fails the Luhn check, so `resolve` raises InvalidCardNumber; listed for pickers.
    _visa(
        "4242424242424241",
        "Fails the Luhn check: the number is incorrect.",
        error_code="incorrect_number",
        message=MSG_INCORRECT_NUMBER,
    ),
    # Fraud prevention (Radar).
    _visa(
        "4100000000000019",
        "Radar always blocks it as fraudulent (risk level highest).",
        error_code="card_declined",
        decline_code="fraudulent",
        message=MSG_DECLINED,
        risk_level="highest",
        blocked=True,
    ),
    _visa(
        "4000000000004954",
        "Succeeds with risk level highest; blocked only where a rule says so.",
        risk_level="highest",
    ),
    _visa(
        "4000000000009235",
        "Succeeds with risk level elevated, so it goes to review.",
        risk_level="elevated",
    ),
    # Disputes and early fraud warnings: the charge succeeds first.
    _visa(
        "4000000000000259",
        "Succeeds, then is disputed as fraudulent.",
        dispute_reason="fraudulent",
        dispute_status="needs_response",
    ),
    _visa(
        "4000000000002685",
        "Succeeds, then is disputed as product not received.",
        dispute_reason="product_not_received",
        dispute_status="needs_response",
    ),
    # An inquiry (retrieval request): a warning_* dispute that moves no money
    # unless escalated. Stripe's test inquiry carries a fraud reason.
    _visa(
        "4000000000001976",
        "Succeeds, then receives a dispute inquiry.",
        dispute_reason="fraudulent",
        dispute_status="warning_needs_response",
    ),
    _visa(
        "4000000000005423",
        "Succeeds, then receives an early fraud warning (no dispute).",
        early_fraud_warning=True,
    ),
    # Refunds: every other card refunds synchronously and for good.
    _visa(
        "4000000000005126",
        "Succeeds; a refund first succeeds, then fails asynchronously.",
        refund_fails=True,
    ),
    # 3-D Secure. The country of the European regulatory cards is the ISO 3166
    # numeric code embedded in the number (250 FR, 276 DE, 826 GB).
    _visa(
        "4000002500003155",
        "Requires authentication unless set up for off-session use, then succeeds.",
        country="FR",
        three_ds="required",
    ),
    _visa(
        "4000002760003184",
        "Requires authentication on every payment, then succeeds.",
        country="DE",
        three_ds="required",
    ),
    _visa(
        "4000008260003178",
        "Requires authentication, then is declined for insufficient funds.",
        country="GB",
        three_ds="required_then_decline",
        error_code="card_declined",
        decline_code="insufficient_funds",
        message=MSG_INSUFFICIENT_FUNDS,
    ),
    _visa(
        "4000000000003220",
        "3D Secure 2 authentication required, then succeeds.",
        three_ds="required",
    ),
    _visa(
        "4000000000003063",
        "3D Secure authentication required, then succeeds.",
        three_ds="required",
    ),
    _visa(
        "4000008400001629",
        "3D Secure authentication required, then declined.",
        three_ds="required_then_decline",
        error_code="card_declined",
        decline_code="generic_decline",
        message=MSG_DECLINED,
    ),
    _visa(
        "4000000000003055",
        "3D Secure supported but not required: frictionless, succeeds.",
        three_ds="optional",
    ),
)

TEST_CARDS: dict[str, TestCard] = {card.number: card for card in _CARDS}

# Stripe's test PaymentMethod ids, spelt as Stripe spells them.
PM_CARDS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_mastercard_prepaid": "5105105105105100",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_diners": "3056930009020004",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_radarBlock": "4100000000000019",
    "pm_card_riskLevelHighest": "4000000000004954",
    "pm_card_riskLevelElevated": "4000000000009235",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_createIssuerFraudRecord": "4000000000005423",
    "pm_card_refundFail": "4000000000005126",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": "4000008260003178",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_threeDSecureRequired": "4000000000003063",
    "pm_card_threeDSecureRequiredChargeDeclined": "4000008400001629",
    "pm_card_threeDSecureOptional": "4000000000003055",
    # Older spellings from earlier versions of the page; integrations still send them.
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
}
