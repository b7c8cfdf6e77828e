"""Who may do what: the one place role rules live.

Pages, the API, websocket consumers and the admin all ask these functions.
Staff (admin, operator, viewer) see every merchant; merchant users see only
their own merchant, with owner / developer / viewer levels. Viewers, staff or
merchant, never act.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.models import MerchantLevel, Role

STAFF_ROLES = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})
ACTING_STAFF = frozenset({Role.ADMIN, Role.OPERATOR})
ACTING_LEVELS = frozenset({MerchantLevel.OWNER, MerchantLevel.DEVELOPER})


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_staff_member(user: Any) -> bool:
    return _active(user) and user.role in STAFF_ROLES


def can_access_admin(user: Any) -> bool:
    return _active(user) and user.role == Role.ADMIN


def merchant_scope(user: Any) -> int | None:
    """The merchant a user is confined to, or None for staff (every merchant)."""
    if is_staff_member(user):
        return None
    return user.merchant_id


def can_view_merchant(user: Any, merchant_id: int) -> bool:
    if is_staff_member(user):
        return True
    return _active(user) and user.role == Role.MERCHANT and user.merchant_id == merchant_id


def can_operate(user: Any, merchant_id: int | None = None) -> bool:
    """Capture, refund, cancel, start simulations, edit processors."""
    if not _active(user):
        return False
    if user.role in ACTING_STAFF:
        return True
    return (
        user.role == Role.MERCHANT
        and user.merchant_level in ACTING_LEVELS
        and (merchant_id is None or user.merchant_id == merchant_id)
    )


def can_manage_keys(user: Any, merchant_id: int | None = None) -> bool:
    if not _active(user):
        return False
    if user.role == Role.ADMIN:
        return True
    return (
        user.role == Role.MERCHANT
        and user.merchant_level == MerchantLevel.OWNER
        and (merchant_id is None or user.merchant_id == merchant_id)
    )


def can_view_keys(user: Any) -> bool:
    """See the API keys page: every role, read-only unless `can_manage_keys`.

    The page shows keys masked (prefix and last four) with their state and
    last use, which a developer needs to tell which key is live; the secret
    itself is shown once, to whoever created it. Which merchant's keys is
    decided by `can_view_merchant` (another merchant's page is a 404).
    """
    return any_role(user)


V = TypeVar("V", bound=Callable[..., HttpResponse])


def role_required(check: Callable[[Any], bool]) -> Callable[[V], V]:
    """Login first (redirect to the login page), then the role check (403)."""

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return login_required(wrapped)  # type: ignore[return-value]

    return decorator


staff_required = role_required(is_staff_member)


def any_role(user: Any) -> bool:
    return is_staff_member(user) or (_active(user) and user.role == Role.MERCHANT)
