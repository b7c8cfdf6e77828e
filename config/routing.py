"""Websocket routes; each app contributes its own."""

from typing import Any

from payments.routing import websocket_urlpatterns as payments_websockets

websocket_urlpatterns: list[Any] = [*payments_websockets]
