"""`manage.py user create EMAIL --role operator|viewer|admin|merchant
[--merchant SLUG --level owner|developer|viewer] --password-stdin`."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import Merchant, MerchantLevel, Role
from config.errors import PayLabError


class Command(BaseCommand):
    help = "Create a staff user or a merchant user."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a user.")
        create.add_argument("email")
        create.add_argument("--role", choices=[*Role.values], default=None)
        create.add_argument("--merchant", metavar="SLUG", default=None)
        create.add_argument("--level", choices=MerchantLevel.values, default=None)
        create.add_argument("--name", default="")
        create.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        merchant = None
        role = options["role"]
        if options["merchant"]:
            merchant = Merchant.objects.filter(slug=options["merchant"]).first()
            if merchant is None:
                raise CommandError(f"No merchant with slug {options['merchant']!r}.")
            role = role or Role.MERCHANT
        if role is None:
            raise CommandError("--role is required (or --merchant SLUG --level LEVEL).")
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin read an empty password.")
            try:
                validate_password(password)
            except ValidationError as error:
                raise CommandError("Password rejected: " + " ".join(error.messages)) from None
        try:
            user = services.user_create(
                email=options["email"],
                password=password,
                role=role,
                merchant=merchant,
                level=options["level"],
                full_name=options["name"],
            )
        except PayLabError as error:
            raise CommandError(error.message) from None
        scope = f" of {merchant.slug} ({user.merchant_level})" if merchant else ""
        self.stdout.write(f"Created {user.role} {user.email}{scope}.")
        if password is None:
            self.stdout.write("No password set: the user cannot log in until one is set.")
