"""/v1/simulator/… routes (tests/simulator/test_api.py holds their tenancy table)."""

from django.urls import path

from simulator.api import views

app_name = "simulator-api"

urlpatterns = [
    path(
        "scenarios",
        views.SimulationScenarioCollectionApi.as_view(),
        name="simulation-scenarios",
    ),
    path("runs", views.SimulationRunCollectionApi.as_view(), name="simulation-runs"),
    path("runs/<str:id>", views.SimulationRunApi.as_view(), name="simulation-run"),
    path(
        "runs/<str:id>/cancel",
        views.SimulationRunCancelApi.as_view(),
        name="simulation-run-cancel",
    ),
]
