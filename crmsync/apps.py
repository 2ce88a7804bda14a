from django.apps import AppConfig


class CrmsyncConfig(AppConfig):
    name = "crmsync"
    verbose_name = "CRM sync"

    def ready(self) -> None:
        from crmsync import checks  # noqa: F401  (registers system checks)
