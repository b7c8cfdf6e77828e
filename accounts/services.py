"""Writes of accounts data: merchants, users, API keys.

API keys are `sk_test_` + 32 base62 characters. Only a SHA-256 digest, the
prefix and the last four characters are stored; the full key exists in
memory once, in the return value of `api_key_create` / `api_key_roll`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiKey, Merchant, MerchantLevel, Role, User
from config.errors import AuthenticationError, InvalidRequestError

KEY_PREFIX = "sk_test_"
KEY_RANDOM_LENGTH = 32
KEY_PATTERN = re.compile(r"^sk_test_[A-Za-z0-9]{24,99}$")
_ALPHABET = string.ascii_letters + string.digits
# last_used_at is a hint for humans; writing it on every request would cost
# one UPDATE per API call, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(seconds=60)

# The key lookup is one query on every API request (~15 % of a payment's
# cost on the hot path, DESIGN.md), so each process keeps the rows it found
# for PAYLAB_API_KEY_CACHE_SECONDS. The revocation and expiry times are still
# compared with the clock on every request, so a scheduled expiry (a roll
# that keeps the old key for a while) is exact. A revoke or roll in this
# process drops the entry at once; another process notices within the TTL,
# and so does a merchant suspended or re-limited in the admin.
_key_cache: dict[str, tuple[float, ApiKey]] = {}
_key_cache_lock = threading.Lock()


def _cached_key(key_hash: str, now: datetime) -> ApiKey | None:
    ttl = float(getattr(settings, "PAYLAB_API_KEY_CACHE_SECONDS", 0.0))
    if ttl <= 0:
        return None
    with _key_cache_lock:
        hit = _key_cache.get(key_hash)
    if hit is None or now.timestamp() - hit[0] >= ttl:
        return None
    return hit[1]


def _remember_key(key_hash: str, api_key: ApiKey, now: datetime) -> None:
    if float(getattr(settings, "PAYLAB_API_KEY_CACHE_SECONDS", 0.0)) <= 0:
        return
    with _key_cache_lock:
        if len(_key_cache) > 10_000:
            _key_cache.clear()
        _key_cache[key_hash] = (now.timestamp(), api_key)


def api_key_cache_forget(key_hash: str | None = None) -> None:
    """Drop one cached key (or all): after a revoke or a roll, on commit."""
    with _key_cache_lock:
        if key_hash is None:
            _key_cache.clear()
        else:
            _key_cache.pop(key_hash, None)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: the row, and the secret shown exactly once."""

    api_key: ApiKey
    secret: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "merchant"
    slug, n = base, 1
    while Merchant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def merchant_create(
    *, name: str, slug: str | None = None, settings: dict[str, Any] | None = None
) -> Merchant:
    """Create a merchant; the slug is derived from the name when not given."""
    name = name.strip()
    if not name:
        raise InvalidRequestError("A merchant needs a name.", param="name")
    if slug is not None and Merchant.objects.filter(slug=slug).exists():
        raise InvalidRequestError(f"A merchant with slug {slug!r} exists already.", param="slug")
    return Merchant.objects.create(
        name=name, slug=slug or _unique_slug(name), settings=settings or {}
    )


@transaction.atomic
def merchant_create_with_key(*, name: str, slug: str | None = None) -> tuple[Merchant, IssuedKey]:
    merchant = merchant_create(name=name, slug=slug)
    return merchant, api_key_create(merchant=merchant, name="Default secret key")


def api_key_create(
    *, merchant: Merchant, name: str = "Secret key", created_by: User | None = None
) -> IssuedKey:
    """Issue a key. The returned secret is the only copy that will ever exist."""
    secret = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_LENGTH))
    api_key = ApiKey.objects.create(
        merchant=merchant,
        name=name.strip() or "Secret key",
        prefix=secret[:12],
        last4=secret[-4:],
        key_hash=hash_key(secret),
        created_by=created_by,
    )
    return IssuedKey(api_key=api_key, secret=secret)


def _get_key(merchant: Merchant, key_id: int) -> ApiKey:
    try:
        return ApiKey.objects.select_for_update().get(pk=key_id, merchant=merchant)
    except ApiKey.DoesNotExist:
        raise InvalidRequestError("No such API key.", status=404, code="resource_missing") from None


@transaction.atomic
def api_key_revoke(*, merchant: Merchant, key_id: int, now: datetime | None = None) -> ApiKey:
    """Revoke now. Revoking a revoked key changes nothing."""
    api_key = _get_key(merchant, key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = now or timezone.now()
        api_key.save(update_fields=["revoked_at"])
        transaction.on_commit(lambda: api_key_cache_forget(api_key.key_hash))
    return api_key


@transaction.atomic
def api_key_roll(
    *,
    merchant: Merchant,
    key_id: int,
    keep_old_for: timedelta | None = None,
    created_by: User | None = None,
    now: datetime | None = None,
) -> IssuedKey:
    """Issue a replacement; the old key stops now or after `keep_old_for`."""
    now = now or timezone.now()
    old = _get_key(merchant, key_id)
    if not old.is_usable(now):
        raise InvalidRequestError("This API key is revoked or expired and cannot be rolled.")
    issued = api_key_create(merchant=merchant, name=old.name, created_by=created_by)
    issued.api_key.rolled_from = old
    issued.api_key.save(update_fields=["rolled_from"])
    if keep_old_for and keep_old_for > timedelta(0):
        old.expires_at = now + keep_old_for
        old.save(update_fields=["expires_at"])
    else:
        old.revoked_at = now
        old.save(update_fields=["revoked_at"])
    transaction.on_commit(lambda: api_key_cache_forget(old.key_hash))
    return issued


def mask_key(raw: str) -> str:
    return f"{raw[:8]}{'*' * 8}{raw[-4:]}" if len(raw) > 12 else "****"


def api_key_authenticate(raw: str, *, now: datetime | None = None) -> ApiKey:
    """The usable key for a presented secret, or AuthenticationError (401).

    The message masks the key the way Stripe does, so a mistyped key can be
    recognised without the full secret reaching a log or a screen.
    """
    if not KEY_PATTERN.match(raw):
        raise AuthenticationError(f"Invalid API Key provided: {mask_key(raw)}")
    now = now or timezone.now()
    key_hash = hash_key(raw)
    api_key = _cached_key(key_hash, now)
    if api_key is None:
        try:
            api_key = ApiKey.objects.select_related("merchant").get(key_hash=key_hash)
        except ApiKey.DoesNotExist:
            raise AuthenticationError(f"Invalid API Key provided: {mask_key(raw)}") from None
        _remember_key(key_hash, api_key, now)
    if api_key.revoked_at is not None and api_key.revoked_at <= now:
        raise AuthenticationError(f"This API key has been revoked: {mask_key(raw)}")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise AuthenticationError(f"This API key has expired: {mask_key(raw)}")
    if not api_key.merchant.is_active:
        raise AuthenticationError("This merchant account is suspended.")
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def user_create(
    *,
    email: str,
    password: str | None,
    role: str,
    merchant: Merchant | None = None,
    level: str | None = None,
    full_name: str = "",
) -> User:
    """Create a staff user (admin/operator/viewer) or a merchant user with a level."""
    if role in {Role.ADMIN, Role.OPERATOR, Role.VIEWER}:
        if merchant is not None or level:
            raise InvalidRequestError(
                "Staff roles see every merchant; --merchant/--level only go with merchant users.",
                param="merchant",
            )
    elif role == Role.MERCHANT:
        if merchant is None:
            raise InvalidRequestError("A merchant user needs a merchant.", param="merchant")
        if level not in MerchantLevel.values:
            raise InvalidRequestError(
                f"level must be one of {', '.join(MerchantLevel.values)}.", param="level"
            )
    else:
        raise InvalidRequestError(f"role must be one of {', '.join(Role.values)}.", param="role")
    if User.objects.filter(email__iexact=email).exists():
        raise InvalidRequestError(f"A user with email {email} exists already.", param="email")
    return User.objects.create_user(
        email,
        password,
        role=role,
        merchant=merchant,
        merchant_level=level or "",
        full_name=full_name,
        is_superuser=role == Role.ADMIN,
    )
