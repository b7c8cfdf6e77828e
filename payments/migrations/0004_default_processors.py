"""Ship three processors and their routing rules (payments.processors.defaults).

Later changes to the shipped defaults need a migration of their own; this
one only inserts missing rows and is safe to re-run.
"""

from typing import Any

from django.db import migrations

PROCESSOR_FIELDS = (
    "display_name", "description", "enabled", "priority", "methods", "currencies", "min_amount",
    "max_amount", "latency_p50_ms", "latency_p99_ms", "soft_decline_rate_bp", "timeout_rate_bp",
    "unavailable_rate_bp", "timeout_ms", "fees", "authorization_lifetime_hours",
)  # fmt: skip


def forwards(apps: Any, schema_editor: Any) -> None:
    from payments.processors.defaults import DEFAULTS

    Processor = apps.get_model("payments", "Processor")
    ProcessorBreaker = apps.get_model("payments", "ProcessorBreaker")
    RoutingRule = apps.get_model("payments", "RoutingRule")
    for item in DEFAULTS["processors"]:
        processor, _ = Processor.objects.get_or_create(
            name=item["name"], defaults={k: item[k] for k in PROCESSOR_FIELDS if k in item}
        )
        ProcessorBreaker.objects.get_or_create(processor=processor)
    for rule in DEFAULTS["rules"]:
        RoutingRule.objects.get_or_create(
            name=rule["name"],
            defaults={
                "position": rule["position"],
                "bin_prefixes": rule.get("bin_prefixes", []),
                "min_amount": rule.get("min_amount"),
                "max_amount": rule.get("max_amount"),
                "currencies": rule.get("currencies", []),
                "methods": rule.get("methods", []),
                "targets": rule["targets"],
            },
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    apps.get_model("payments", "RoutingRule").objects.all().delete()
    apps.get_model("payments", "Processor").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("payments", "0003_processors")]

    operations = [migrations.RunPython(forwards, backwards)]
