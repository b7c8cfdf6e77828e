"""Accounts pages: login, logout, password change, API keys, merchants."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods

from accounts import roles, selectors, services
from accounts.forms import ApiKeyCreateForm, ApiKeyRollForm, LoginForm, MerchantCreateForm
from accounts.models import Merchant
from config.errors import PayLabError


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


def _no_store(response: HttpResponse) -> HttpResponse:
    # Pages that may show a secret key must never be cached or replayed.
    response["Cache-Control"] = "no-store"
    return response


@roles.role_required(roles.can_view_keys)
def api_keys_home(request: HttpRequest) -> HttpResponse:
    """Merchant owners land on their own keys; staff pick a merchant."""
    if request.user.merchant_id:  # type: ignore[union-attr]
        return redirect("accounts:api_keys", merchant_id=request.user.merchant_id)  # type: ignore[union-attr]
    return redirect("accounts:merchants")


@roles.role_required(roles.can_view_keys)
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest, merchant_id: int) -> HttpResponse:
    merchant = selectors.merchant_for_user(request.user, merchant_id)
    may_manage = roles.can_manage_keys(request.user, merchant.pk)
    context: dict[str, object] = {
        "merchant": merchant,
        "may_manage": may_manage,
        "create_form": ApiKeyCreateForm(),
        "roll_form": ApiKeyRollForm(),
    }
    if request.method == "POST":
        if not may_manage:
            raise PermissionDenied
        context.update(_api_key_action(request, merchant))
    context["keys"] = selectors.api_keys_for_merchant(merchant)
    template = "accounts/api_keys.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#api-keys"
    return _no_store(render(request, template, context))


def _api_key_action(request: HttpRequest, merchant: Merchant) -> dict[str, object]:
    """Run one POSTed key action; the new secret is rendered once, never stored."""
    action = request.POST.get("action")
    try:
        if action == "create":
            form = ApiKeyCreateForm(request.POST)
            if not form.is_valid():
                return {"create_form": form}
            issued = services.api_key_create(
                merchant=merchant,
                name=form.cleaned_data["name"],
                created_by=request.user,  # type: ignore[arg-type]
            )
            return {"new_secret": issued.secret, "new_key": issued.api_key}
        key_id = int(request.POST.get("key_id", "0") or 0)
        if action == "revoke":
            revoked = services.api_key_revoke(merchant=merchant, key_id=key_id)
            messages.success(request, f"Key {revoked.masked} revoked.")
            return {}
        if action == "roll":
            roll_form = ApiKeyRollForm(request.POST)
            if not roll_form.is_valid():
                return {"roll_form": roll_form, "error": "Choose how long the old key stays valid."}
            hours = roll_form.cleaned_data["keep_old_hours"]
            issued = services.api_key_roll(
                merchant=merchant,
                key_id=key_id,
                keep_old_for=timedelta(hours=hours) if hours else None,
                created_by=request.user,  # type: ignore[arg-type]
            )
            return {"new_secret": issued.secret, "new_key": issued.api_key}
    except (PayLabError, ValueError) as error:
        return {"error": getattr(error, "message", "That key does not exist.")}
    return {"error": "Unknown action."}


@roles.staff_required
@require_http_methods(["GET", "POST"])
def merchants(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"form": MerchantCreateForm()}
    if request.method == "POST":
        if not roles.can_access_admin(request.user):
            raise PermissionDenied
        form = MerchantCreateForm(request.POST)
        if form.is_valid():
            try:
                merchant, issued = services.merchant_create_with_key(name=form.cleaned_data["name"])
            except PayLabError as error:
                form.add_error("name", error.message)
            else:
                context.update(new_merchant=merchant, new_secret=issued.secret)
        context["form"] = form
    context["merchants"] = selectors.merchants_with_counts()
    return _no_store(render(request, "accounts/merchants.html", context))
