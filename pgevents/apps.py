from django.apps import AppConfig


class PgeventsConfig(AppConfig):
    """Wiring only: the system checks, the embedded listener handed to the server process's
    runtime (which starts it only when configured), and the sync after ``migrate``. No SQL
    and no connections."""

    name = "pgevents"
    verbose_name = "pgevents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from pgevents import checks  # noqa: F401  (registers the checks)
        from pgevents.capture import embedded
        from pgevents.delivery import runtime
        from pgevents.setup import sync

        runtime.on_start(embedded.start)
        post_migrate.connect(sync.after_migrate, sender=self, dispatch_uid="pgevents.sync.after_migrate")
