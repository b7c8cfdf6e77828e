from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # Registers the rollup checks with `manage.py verify`.
        from analytics import checks  # noqa: F401
