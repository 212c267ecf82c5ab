from django.apps import AppConfig


class LibraryConfig(AppConfig):
    """Authors and books: a listing that shows another table's field stays live."""

    name = "demo_project.library"
    label = "library"
    default_auto_field = "django.db.models.BigAutoField"
