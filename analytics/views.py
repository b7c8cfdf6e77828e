"""Dashboard pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import roles, selectors


@roles.role_required(roles.any_role)
def overview(request: HttpRequest) -> HttpResponse:
    merchants = selectors.merchants_for_user(request.user)
    return render(
        request,
        "analytics/overview.html",
        {"merchants": merchants, "api_base": request.build_absolute_uri("/v1")},
    )
