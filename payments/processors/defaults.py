"""The processors and routing rules PayLab ships with (data migration 0004),
in the JSON shape `manage.py processors import/export` reads and writes.

Three distinct profiles:
- `swift` — fast and cheap: low latency, low fees, a few soft declines;
- `ironbank` — reliable and pricey: slower, almost never fails, costly;
- `monsoon` — flaky regional: India (INR, UPI), slow tail, times out often.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "processors": [
        {
            "name": "swift",
            "display_name": "Swift Acquiring",
            "description": "Fast and cheap: low latency, low fees, a few soft declines.",
            "enabled": True,
            "priority": 10,
            "methods": ["card", "wallet"],
            "currencies": [],
            "min_amount": 0,
            "max_amount": 0,
            "latency_p50_ms": 80,
            "latency_p99_ms": 300,
            "soft_decline_rate_bp": 150,
            "timeout_rate_bp": 20,
            "unavailable_rate_bp": 30,
            "timeout_ms": 2000,
            "fees": {"default": {"percent_bp": 190, "fixed": 20}},
            "authorization_lifetime_hours": 168,
        },
        {
            "name": "ironbank",
            "display_name": "Iron Bank Merchant Services",
            "description": "Reliable and pricey: slower, almost never fails.",
            "enabled": True,
            "priority": 20,
            "methods": ["card", "wallet"],
            "currencies": [],
            "min_amount": 0,
            "max_amount": 0,
            "latency_p50_ms": 200,
            "latency_p99_ms": 600,
            "soft_decline_rate_bp": 20,
            "timeout_rate_bp": 0,
            "unavailable_rate_bp": 5,
            "timeout_ms": 5000,
            "fees": {
                "default": {"percent_bp": 340, "fixed": 30},
                "jpy": {"percent_bp": 360, "fixed": 0},
            },
            "authorization_lifetime_hours": 168,
        },
        {
            "name": "monsoon",
            "display_name": "Monsoon Payments (India)",
            "description": "Flaky regional: INR cards and UPI, a slow tail, frequent timeouts.",
            "enabled": True,
            "priority": 30,
            "methods": ["card", "upi"],
            "currencies": ["inr"],
            "min_amount": 0,
            "max_amount": 10_000_000,
            "latency_p50_ms": 300,
            "latency_p99_ms": 2500,
            "soft_decline_rate_bp": 400,
            "timeout_rate_bp": 500,
            "unavailable_rate_bp": 300,
            "timeout_ms": 2500,
            "fees": {
                "default": {"percent_bp": 120, "fixed": 0},
                "inr": {"percent_bp": 120, "fixed": 300},
            },
            "authorization_lifetime_hours": 120,
        },
    ],
    "rules": [
        {
            "name": "upi-india",
            "position": 10,
            "methods": ["upi"],
            "targets": [{"processor": "monsoon", "weight": 100}],
        },
        {
            "name": "inr-cards",
            "position": 20,
            "currencies": ["inr"],
            "targets": [
                {"processor": "monsoon", "weight": 80},
                {"processor": "swift", "weight": 20},
            ],
        },
        {
            "name": "amex-to-ironbank",
            "position": 30,
            "bin_prefixes": ["34", "37"],
            "targets": [{"processor": "ironbank", "weight": 100}],
        },
        {
            "name": "high-value",
            "position": 40,
            "min_amount": 1_000_000,
            "targets": [
                {"processor": "ironbank", "weight": 100},
                {"processor": "swift", "weight": 0},
            ],
        },
        {
            "name": "default-split",
            "position": 1000,
            "targets": [
                {"processor": "swift", "weight": 90},
                {"processor": "ironbank", "weight": 10},
            ],
        },
    ],
}
