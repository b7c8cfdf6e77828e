from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("analytics/kpis/", views.overview_kpis, name="overview_kpis"),
]
