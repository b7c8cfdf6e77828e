"""Routes of the payments pages; included by payments.urls (namespace `payments`)."""

from django.urls import path

from payments.dashboard import views

urlpatterns = [
    path("payments/", views.payment_list, name="payment_list"),
    path("payments/export.csv", views.payment_export, name="payment_export"),
    path("payments/<str:payment_id>/", views.payment_detail, name="payment_detail"),
    path(
        "payments/<str:payment_id>/<slug:action>/",
        views.payment_action,
        name="payment_action",
    ),
    path("live/", views.live_feed, name="live_feed"),
    path("webhooks/", views.webhook_list, name="webhook_list"),
    path("webhooks/deliveries/<int:delivery_id>/", views.webhook_delivery, name="webhook_delivery"),
    path(
        "webhooks/deliveries/<int:delivery_id>/resend/",
        views.webhook_delivery_resend,
        name="webhook_delivery_resend",
    ),
]
