from django.contrib import admin
from django.urls import path

from monitoring import views

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="monitoring-dashboard"),
]
