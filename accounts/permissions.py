"""DRF permission classes built on `accounts.roles`."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.authentication import ApiClient
from config.errors import AuthenticationError


class HasApiKey(BasePermission):
    """Every merchant API call needs a valid secret key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.user, ApiClient):
            raise AuthenticationError(
                "You did not provide an API key. Send it as the HTTP Basic username "
                "or as 'Authorization: Bearer sk_test_…'."
            )
        return True
