from django.urls import path

from payments import processor_views, views
from payments.dashboard.urls import urlpatterns as dashboard_urlpatterns

app_name = "payments"

urlpatterns = [
    path("hosted/3ds/<str:token>/", views.three_ds_challenge, name="three_ds_challenge"),
    *dashboard_urlpatterns,
    path("processors/", processor_views.processor_list, name="processors"),
    path("processors/outages", processor_views.outage_schedule, name="processor_outage"),
    path(
        "processors/<slug:name>/action",
        processor_views.processor_action,
        name="processor_action",
    ),
    path(
        "processors/<slug:name>/settings",
        processor_views.processor_settings,
        name="processor_settings",
    ),
]
