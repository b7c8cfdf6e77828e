"""The card of each payment's latest attempt on the intent (`card_brand`,
`card_last4`), for the explorer's brand filter and last4 search, which read
it through `pi_card_brand` / `pi_card_last4` (payments/models/intents.py).

Backfill, the card the write path would have kept (payments.services.
transition.set_card), in set-based SQL, each row written at most once:

1. the intent's payment method, when it has one;
2. without one (a failed confirmation cleared it, as in Stripe): the
   payment method of the failed attempt that `last_payment_error` carries
   (a 3-D Secure failure has no charge of its own);
3. without either: the payment method of the latest charge (charges keep
   their payment method).

A non-card method leaves the columns blank. The same SQL on PostgreSQL and
SQLite (both have UPDATE … FROM) but for reading the JSON error. The
indexes are built after the backfill, so the UPDATE does not maintain them.
"""

from django.db import migrations, models

SET_FROM_METHOD = """
UPDATE payments_paymentintent AS pi
SET card_brand = pm.brand, card_last4 = pm.last4
FROM payments_paymentmethod AS pm
WHERE pm.id = pi.payment_method_id AND pm.type = 'card'
"""

# {brand}, {last4}, {method} and {type} read `last_payment_error`'s
# payment method (per vendor, below).
SET_FROM_ERROR = """
UPDATE payments_paymentintent AS pi
SET card_brand = COALESCE({brand}, ''), card_last4 = COALESCE({last4}, '')
WHERE pi.payment_method_id IS NULL AND {method} IS NOT NULL AND {type} = 'card'
"""

SET_FROM_CHARGE = """
UPDATE payments_paymentintent AS pi
SET card_brand = pm.brand, card_last4 = pm.last4
FROM payments_charge AS ch, payments_paymentmethod AS pm
WHERE pi.payment_method_id IS NULL AND ch.id = pi.latest_charge_id
  AND pm.id = ch.payment_method_id AND pm.type = 'card'
  AND ({method} IS NULL)
"""

ERROR_PATHS = {
    "postgresql": {
        name: f"pi.last_payment_error #>> '{{payment_method,{path}}}'"
        for name, path in (
            ("brand", "card,brand"),
            ("last4", "card,last4"),
            ("method", "id"),
            ("type", "type"),
        )
    },
    "sqlite": {
        name: f"json_extract(pi.last_payment_error, '$.payment_method.{path}')"
        for name, path in (
            ("brand", "card.brand"),
            ("last4", "card.last4"),
            ("method", "id"),
            ("type", "type"),
        )
    },
}


def backfill(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    paths = ERROR_PATHS.get(vendor)
    if paths is None:
        raise NotImplementedError(f"card backfill: no SQL for {vendor}")
    if vendor == "postgresql":
        # For the two index builds that follow, in this transaction only.
        schema_editor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    schema_editor.execute(SET_FROM_METHOD)
    schema_editor.execute(SET_FROM_ERROR.format(**paths))
    schema_editor.execute(SET_FROM_CHARGE.format(**paths))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("payments", "0008_explorer_currency_amount_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="paymentintent",
            name="card_brand",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.AddField(
            model_name="paymentintent",
            name="card_last4",
            field=models.CharField(blank=True, default="", max_length=4),
        ),
        # Reversed by removing the columns.
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name="paymentintent",
            index=models.Index(fields=["card_last4", "-created", "-id"], name="pi_card_last4"),
        ),
        migrations.AddIndex(
            model_name="paymentintent",
            index=models.Index(fields=["card_brand", "-created", "-id"], name="pi_card_brand"),
        ),
    ]
