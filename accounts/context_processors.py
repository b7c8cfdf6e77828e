"""Role flags for templates, so pages hide what a user may not do."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts import roles


def role_flags(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "is_staff_member": roles.is_staff_member(user),
        "can_operate": roles.can_operate(user),
        "can_manage_keys": roles.can_manage_keys(user),
        "can_view_keys": roles.can_view_keys(user),
        "can_access_admin": roles.can_access_admin(user),
    }
