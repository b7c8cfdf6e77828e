"""`manage.py demo`: a ready-to-explore PayLab on an empty database.

Creates an admin, an operator, a viewer, two merchants with an owner and a
viewer each and a secret key each, and prints the logins and keys once.
Does nothing (and says so) when users or merchants exist already.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts import services
from accounts.models import Merchant, User

STAFF = [
    ("admin@paylab.local", "admin"),
    ("operator@paylab.local", "operator"),
    ("viewer@paylab.local", "viewer"),
]
MERCHANTS = [("Acme Books", "acme"), ("Globex Travel", "globex")]


class Command(BaseCommand):
    help = "Fill an empty database with demo users, merchants and keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password", default=None, help="One password for every demo user (default: random)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.exists() or Merchant.objects.exists():
            self.stdout.write("The database has users or merchants already; demo data not added.")
            return
        password = options["password"] or secrets.token_urlsafe(9)
        result: dict[str, Any] = {"password": password, "users": [], "merchants": []}
        with transaction.atomic():
            for email, role in STAFF:
                services.user_create(email=email, password=password, role=role)
                result["users"].append({"email": email, "role": role})
            for name, slug in MERCHANTS:
                merchant, issued = services.merchant_create_with_key(name=name, slug=slug)
                for level in ("owner", "viewer"):
                    email = f"{level}@{slug}.test"
                    services.user_create(
                        email=email,
                        password=password,
                        role="merchant",
                        merchant=merchant,
                        level=level,
                    )
                    result["users"].append({"email": email, "role": f"merchant {slug} {level}"})
                result["merchants"].append(
                    {
                        "merchant_id": merchant.pk,
                        "slug": slug,
                        "name": name,
                        "secret_key": issued.secret,
                    }
                )
        self._print(result, as_json=options["json"])

    def _print(self, result: dict[str, Any], *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            self.style.SUCCESS("PayLab demo data created. Shown once — note it down:")
        )
        self.stdout.write(f"  password for every user: {result['password']}")
        for user in result["users"]:
            self.stdout.write(f"  {user['email']:<28} {user['role']}")
        for merchant in result["merchants"]:
            self.stdout.write(f"  {merchant['name']:<16} secret key {merchant['secret_key']}")
