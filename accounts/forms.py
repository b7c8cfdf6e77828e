"""Forms of the accounts pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm


class LoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def clean_username(self) -> str:
        # Emails are stored lower-cased (`UserManager.create_user`). Lower-casing
        # here also hands django-axes one spelling per account, so `Bob@…` and
        # `bob@…` count towards the same lockout.
        return str(self.cleaned_data["username"]).lower()


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Secret key", label="Key name")


class ApiKeyRollForm(forms.Form):
    KEEP_CHOICES = [
        ("0", "Expire the old key now"),
        ("1", "Keep the old key for 1 hour"),
        ("24", "Keep the old key for 24 hours"),
        ("168", "Keep the old key for 7 days"),
    ]
    keep_old_hours = forms.TypedChoiceField(
        choices=KEEP_CHOICES, coerce=int, initial="0", label="Old key"
    )


class MerchantCreateForm(forms.Form):
    name = forms.CharField(max_length=200, label="Merchant name")
