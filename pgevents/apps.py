from django.apps import AppConfig


class PgeventsConfig(AppConfig):
    """Wiring only: the system checks, and the embedded listener handed to the server
    process's runtime (which starts it only when configured). No SQL and no connections."""

    name = "pgevents"
    verbose_name = "pgevents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pgevents import checks  # noqa: F401  (registers the checks)
        from pgevents.capture import embedded
        from pgevents.delivery import runtime

        runtime.on_start(embedded.start)
