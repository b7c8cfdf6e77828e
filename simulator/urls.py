from django.urls import path

from simulator import views

app_name = "simulator"

urlpatterns = [
    path("", views.simulator_page, name="page"),
    path("runs/", views.runs_partial, name="runs"),
    path("runs/<str:run_id>/stop", views.run_stop, name="stop"),
    path("sink/<int:merchant_id>", views.webhook_sink, name="webhook_sink"),
]
