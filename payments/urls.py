from django.urls import path

from payments import views
from payments.dashboard.urls import urlpatterns as dashboard_urlpatterns

app_name = "payments"

urlpatterns = [
    path("hosted/3ds/<str:token>/", views.three_ds_challenge, name="three_ds_challenge"),
    *dashboard_urlpatterns,
]
