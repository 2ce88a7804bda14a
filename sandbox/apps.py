"""The sandbox CRM's Django app. Its label stays "sandbox", which its tables and migrations carry."""

import sys

from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "sandbox"
    label = "sandbox"
    verbose_name = "Sandbox CRM"

    def ready(self) -> None:
        # Under gunicorn, the sandbox's answers must carry the CRM's Date header (its own clock),
        # which gunicorn would replace by its own. Imported here: sandbox.clock needs the models,
        # which are not loaded yet when this module is imported.
        if settings.SANDBOX_ENABLED and "gunicorn" in sys.modules:
            from sandbox.clock import gunicorn_single_date

            gunicorn_single_date()
