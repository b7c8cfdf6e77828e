"""Simulated processors (acquirers): routing, circuit breakers, latency and
failures — everything "the processor" adds on top of the issuer's answer.

Pure logic lives here (`routing`, `breaker`, `latency`); the processor data
in `payments.models.processors`; `payments.processing` is the seam through
which the payment services ask for an outcome.
"""
