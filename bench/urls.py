from django.urls import path

from bench import views
from crmsync.urls import urlpatterns as product_urlpatterns

urlpatterns = [path("bench/bare", views.bare), *product_urlpatterns]
