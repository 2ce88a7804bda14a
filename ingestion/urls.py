from django.urls import path

from ingestion.api import SubmissionCreateView

urlpatterns = [
    path("sources/<slug:slug>/submissions", SubmissionCreateView.as_view(), name="submission-create"),
]
