"""`manage.py merchant create "Acme Ltd" [--slug acme] [--json]` and `merchant list`."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import Merchant
from config.errors import PayLabError


class Command(BaseCommand):
    help = "Create or list merchants. `create` also issues a secret API key."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a merchant and a secret key.")
        create.add_argument("name")
        create.add_argument("--slug", default=None)
        create.add_argument("--json", action="store_true", help="Print one JSON object.")
        sub.add_parser("list", help="List merchants.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for merchant in Merchant.objects.all():
                self.stdout.write(
                    f"{merchant.pk}\t{merchant.slug}\t{merchant.status}\t{merchant.name}"
                )
            return
        try:
            merchant, issued = services.merchant_create_with_key(
                name=options["name"], slug=options["slug"]
            )
        except PayLabError as error:
            raise CommandError(error.message) from None
        result = {
            "merchant_id": merchant.pk,
            "slug": merchant.slug,
            "name": merchant.name,
            "secret_key": issued.secret,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Merchant {merchant.name} (id {merchant.pk}, slug {merchant.slug})")
            self.stdout.write(f"Secret key (shown once): {issued.secret}")
