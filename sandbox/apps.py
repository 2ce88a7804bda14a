"""The sandbox CRM's Django app. Its label stays "sandbox", which its tables and migrations carry."""

from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    label = "sandbox"
    verbose_name = "Sandbox CRM"
