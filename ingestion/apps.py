from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from ingestion import cache
        from ingestion.models import Source, SourceSecret

        # Cache invalidation only: a changed source or credential must not wait for the TTL
        # in the process that changed it.
        for model in (Source, SourceSecret):
            post_save.connect(cache.clear, sender=model, dispatch_uid=f"intake-cache-{model.__name__}-save")
            post_delete.connect(cache.clear, sender=model, dispatch_uid=f"intake-cache-{model.__name__}-delete")
