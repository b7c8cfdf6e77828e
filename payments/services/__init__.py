"""Writes of the payments domain: one module per concern, one transaction per call."""
