from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # Registers the OpenAPI extensions (key authentication, expandable
        # fields) whether or not a view module has been imported yet.
        from payments.api import schema  # noqa: F401

        # Registers the webhook delivery check of `manage.py verify`.
        from payments.services import webhooks  # noqa: F401
