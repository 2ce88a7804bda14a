from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

# The canonical lead fields a rule may target; anything else goes to "attributes.<key>".
CANONICAL_FIELDS = ("email", "first_name", "last_name", "phone", "company", "country")
ATTRIBUTE_PREFIX = "attributes."


class MappingSet(models.Model):
    """How one source's payload becomes a canonical lead. One active set per source."""

    source = models.ForeignKey("ingestion.Source", on_delete=models.CASCADE, related_name="mapping_sets")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"], condition=Q(is_active=True), name="mappingset_one_active_per_source"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class FieldRule(models.Model):
    """One source field to one canonical field, with its transforms and checks."""

    mapping_set = models.ForeignKey(MappingSet, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    source_field = models.CharField(max_length=200, help_text="Key in the payload; dots reach into objects.")
    target = models.CharField(
        max_length=200,
        help_text="A lead field (email, first_name, last_name, phone, company, country) "
        "or attributes.<name> for a custom attribute.",
    )
    trim = models.BooleanField(default=True)
    lowercase = models.BooleanField(default=False)
    required = models.BooleanField(default=False)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mapping_set", "target"], name="fieldrule_unique_target"),
        ]

    def __str__(self) -> str:
        return f"{self.source_field} → {self.target}"

    def clean(self) -> None:
        if self.target in CANONICAL_FIELDS:
            return
        key = self.target.removeprefix(ATTRIBUTE_PREFIX)
        if not self.target.startswith(ATTRIBUTE_PREFIX) or not key.isidentifier():
            raise ValidationError(
                {"target": f"Use one of {', '.join(CANONICAL_FIELDS)} or attributes.<name>."}
            )
