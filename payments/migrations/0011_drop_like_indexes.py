# The varchar_pattern_ops ("_like") twins Django adds to every varchar primary
# key and foreign-key index on PostgreSQL, on the tables a payment writes.
# They serve only LIKE 'prefix%' queries, and nothing queries these columns
# that way (ids are looked up whole; the explorer's free search matches ids
# exactly). Each cost an index entry per row written — ~19 of a confirmed
# payment's ~70 — and ~7 % of a seeded database. PostgreSQL only (SQLite has
# no such indexes). A later AlterField of one of these columns would add its
# twin back; drop it again there.
from django.db import migrations

LIKE = [
    (
        "payments_charge",
        "balance_transaction_id",
        "payments_charge_balance_transaction_id_daed0e7a_like",
    ),
    ("payments_charge", "customer_id", "payments_charge_customer_id_daf5405c_like"),
    ("payments_charge", "id", "payments_charge_id_bf174b31_like"),
    ("payments_charge", "payment_intent_id", "payments_charge_payment_intent_id_a033f8d9_like"),
    ("payments_charge", "payment_method_id", "payments_charge_payment_method_id_586278fd_like"),
    ("payments_customer", "id", "payments_customer_id_aaada1dd_like"),
    ("payments_dispute", "charge_id", "payments_dispute_charge_id_751cc74d_like"),
    ("payments_dispute", "id", "payments_dispute_id_8c9a5f23_like"),
    ("payments_dispute", "payment_intent_id", "payments_dispute_payment_intent_id_a8a4f586_like"),
    ("payments_event", "id", "payments_event_id_613fabaa_like"),
    ("payments_ledgerentry", "transaction_id", "payments_ledgerentry_transaction_id_0b930aa1_like"),
    ("payments_ledgertransaction", "id", "payments_ledgertransaction_id_38fdfee2_like"),
    (
        "payments_ledgertransaction",
        "payment_intent_id",
        "payments_ledgertransaction_payment_intent_id_f97a9e81_like",
    ),
    ("payments_outboxmessage", "event_id", "payments_outboxmessage_event_id_02c94955_like"),
    ("payments_paymentintent", "customer_id", "payments_paymentintent_customer_id_cdfcf1c4_like"),
    ("payments_paymentintent", "id", "payments_paymentintent_id_d0b7ce29_like"),
    (
        "payments_paymentintent",
        "latest_charge_id",
        "payments_paymentintent_latest_charge_id_f09bd79c_like",
    ),
    (
        "payments_paymentintent",
        "payment_method_id",
        "payments_paymentintent_payment_method_id_7bd2c181_like",
    ),
    ("payments_paymentmethod", "customer_id", "payments_paymentmethod_customer_id_cb328686_like"),
    ("payments_paymentmethod", "id", "payments_paymentmethod_id_bbc05cfb_like"),
    (
        "payments_pendingauthorization",
        "payment_intent_id",
        "payments_pendingauthorization_payment_intent_id_44c4103e_like",
    ),
    (
        "payments_refund",
        "balance_transaction_id",
        "payments_refund_balance_transaction_id_e004717f_like",
    ),
    ("payments_refund", "charge_id", "payments_refund_charge_id_2ba1056b_like"),
    ("payments_refund", "id", "payments_refund_id_07b825d4_like"),
    ("payments_refund", "payment_intent_id", "payments_refund_payment_intent_id_01fe4caf_like"),
    (
        "payments_threedschallenge",
        "payment_intent_id",
        "payments_threedschallenge_payment_intent_id_f52f44fb_like",
    ),
    ("payments_threedschallenge", "token", "payments_threedschallenge_token_38306497_like"),
    (
        "payments_webhookdelivery",
        "endpoint_id",
        "payments_webhookdelivery_endpoint_id_1d59aa89_like",
    ),
    ("payments_webhookdelivery", "event_id", "payments_webhookdelivery_event_id_24d45cc0_like"),
]


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, _, name in LIKE:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def recreate(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, name in LIKE:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [("payments", "0010_processor_breaker_failure_rate")]

    operations = [migrations.RunPython(drop, recreate, elidable=False)]
