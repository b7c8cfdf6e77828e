"""Websocket routes of the payments app (see payments.consumers)."""

from typing import Any

from django.urls import path

from payments import consumers

websocket_urlpatterns: list[Any] = [
    path("ws/events/", consumers.EventFeedConsumer.as_asgi()),
    path("ws/payments/<str:payment_id>/", consumers.PaymentTimelineConsumer.as_asgi()),
]
