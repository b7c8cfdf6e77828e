"""Django admin for users, merchants and API keys.

Only the admin role reaches the admin (`User.is_staff`). Keys are created
and rolled through the same services as the API keys page; the secret is
rendered once on the response page and stored nowhere.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import services
from accounts.models import ApiKey, Merchant, User


class PayLabUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "role", "merchant", "merchant_level")


class PayLabUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = PayLabUserCreationForm
    form = PayLabUserChangeForm
    ordering = ("email",)
    list_display = (
        "email",
        "full_name",
        "role",
        "merchant",
        "merchant_level",
        "is_active",
        "last_login",
    )
    list_filter = ("role", "merchant_level", "is_active", "merchant")
    search_fields = ("email", "full_name")
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Access", {"fields": ("role", "merchant", "merchant_level", "is_active", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "role", "merchant", "merchant_level", "password1", "password2"),
            },
        ),
    )
    filter_horizontal = ()


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "masked", "state", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [ApiKeyInline]


class ApiKeyAddForm(forms.Form):
    merchant = forms.ModelChoiceField(queryset=Merchant.objects.all())
    name = forms.CharField(max_length=100, initial="Secret key")


def _show_secrets(
    request: HttpRequest, issued: list[services.IssuedKey], title: str
) -> HttpResponse:
    response = render(
        request,
        "admin/accounts/apikey/secrets.html",
        {
            "title": title,
            "issued": issued,
            "opts": ApiKey._meta,
            "site_header": admin.site.site_header,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "masked",
        "name",
        "merchant",
        "state",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("merchant", "created_at")
    search_fields = ("name", "prefix", "last4", "merchant__name")
    readonly_fields = (
        "merchant",
        "prefix",
        "last4",
        "created_at",
        "created_by",
        "last_used_at",
        "rolled_from",
        "revoked_at",
        "expires_at",
    )
    exclude = ("key_hash",)
    actions = ["revoke_keys", "roll_keys"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoke instead: a deleted key would erase who used what, when.
        return False

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        form = ApiKeyAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            issued = services.api_key_create(
                merchant=form.cleaned_data["merchant"],
                name=form.cleaned_data["name"],
                created_by=request.user,  # type: ignore[arg-type]
            )
            return _show_secrets(request, [issued], "API key created")
        return render(
            request,
            "admin/accounts/apikey/add.html",
            {
                "form": form,
                "title": "Add API key",
                "opts": ApiKey._meta,
                "site_header": admin.site.site_header,
            },
        )

    @admin.action(description="Revoke selected keys now")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.select_related("merchant"):
            services.api_key_revoke(merchant=key.merchant, key_id=key.pk)
        messages.success(request, f"Revoked {queryset.count()} key(s).")

    @admin.action(description="Roll selected keys (old keys stop now)")
    def roll_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        issued = []
        for key in queryset.select_related("merchant"):
            if key.is_usable():
                issued.append(
                    services.api_key_roll(
                        merchant=key.merchant,
                        key_id=key.pk,
                        created_by=request.user,  # type: ignore[arg-type]
                    )
                )
        if not issued:
            messages.warning(request, "No usable key was selected.")
            return None
        return _show_secrets(request, issued, "API keys rolled")
