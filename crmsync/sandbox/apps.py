from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "crmsync.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox CRM"
