"""The payments domain: intents, charges, refunds, disputes, ledger, events."""
