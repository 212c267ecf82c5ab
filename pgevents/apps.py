from django.apps import AppConfig


class PgeventsConfig(AppConfig):
    """Wiring only: registering the system checks. No SQL and no connections here."""

    name = "pgevents"
    verbose_name = "pgevents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pgevents import checks  # noqa: F401  (registers the checks)
