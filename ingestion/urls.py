from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ingestion.api import submissions

urlpatterns = [
    path("sources/<slug:slug>/submissions", submissions, name="submission-create"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
