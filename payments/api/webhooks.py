"""/v1/webhook_endpoints, in Stripe's shape, plus two PayLab-only operations.

Stripe's: create (the response carries the `whsec_` secret, the only time
it is shown), list, retrieve, update (`disabled=true|false`), delete.
PayLab's, since Stripe does these from its dashboard only:
- `POST /v1/webhook_endpoints/{id}/roll_secret` — a new secret, returned once;
- `POST /v1/webhook_endpoints/{id}/resend` with `event=evt_…` (one event)
  or `since=<unix ts>` (every undelivered subscribed event since then).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request

from payments import presenters, selectors
from payments.api import schema
from payments.api.base import Body, StripeApi, list_object
from payments.api.fields import ExpandField, MetadataField, StripeSerializer, list_params
from payments.services import webhooks

Params = dict[str, Any]


class EnabledEventsField(serializers.ListField):
    child = serializers.CharField(max_length=100)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [data]
        return super().to_internal_value(data)


class WebhookEndpointCreateSerializer(StripeSerializer):
    url = serializers.URLField(max_length=2048)
    enabled_events = EnabledEventsField()
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    metadata = MetadataField(required=False)
    # Accepted for compatibility with Stripe integrations; no effect here.
    api_version = serializers.CharField(max_length=40, required=False)
    connect = serializers.BooleanField(required=False)
    expand = ExpandField(required=False)


class WebhookEndpointUpdateSerializer(StripeSerializer):
    url = serializers.URLField(max_length=2048, required=False)
    enabled_events = EnabledEventsField(required=False)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    metadata = MetadataField(required=False)
    disabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    expand = ExpandField(required=False)


class WebhookResendSerializer(StripeSerializer):
    event = serializers.CharField(max_length=64, required=False)
    since = serializers.IntegerField(min_value=0, required=False)


class PlainSerializer(StripeSerializer):
    pass


WebhookEndpointListSerializer = list_params()


@extend_schema_view(
    get=schema.operation(
        "ListWebhookEndpoints",
        summary="List webhook endpoints",
        tag="Webhook endpoints",
        query=WebhookEndpointListSerializer,
        response=schema.list_of(schema.WebhookEndpointSerializer),
    ),
    post=schema.operation(
        "CreateWebhookEndpoint",
        summary="Create a webhook endpoint",
        description="The answer carries the `whsec_` signing secret; no other answer does.",
        tag="Webhook endpoints",
        request=WebhookEndpointCreateSerializer,
        response=schema.WebhookEndpointSerializer,
        write=True,
    ),
)
class WebhookEndpointCollectionApi(StripeApi):
    serializers = {"GET": WebhookEndpointListSerializer, "POST": WebhookEndpointCreateSerializer}

    def perform_get(self, request: Request, params: Params) -> tuple[int, Body]:
        query = selectors.webhook_endpoints(self.merchant_id(request))
        return 200, list_object(
            request, query, params, lambda obj, _: presenters.webhook_endpoint(obj)
        )

    def perform_post(self, request: Request, params: Params) -> tuple[int, Body]:
        endpoint = webhooks.webhook_endpoint_create(
            merchant=self.client(request).merchant,
            url=params["url"],
            enabled_events=params["enabled_events"],
            description=params.get("description", ""),
            metadata=params.get("metadata"),
        )
        return 200, presenters.webhook_endpoint(endpoint, with_secret=True)


@extend_schema_view(
    get=schema.operation(
        "RetrieveWebhookEndpoint",
        summary="Retrieve a webhook endpoint",
        tag="Webhook endpoints",
        response=schema.WebhookEndpointSerializer,
        path_id=("we", "webhook endpoint"),
    ),
    post=schema.operation(
        "UpdateWebhookEndpoint",
        summary="Update a webhook endpoint",
        description="`disabled=false` re-enables an endpoint PayLab or the merchant disabled.",
        tag="Webhook endpoints",
        request=WebhookEndpointUpdateSerializer,
        response=schema.WebhookEndpointSerializer,
        path_id=("we", "webhook endpoint"),
        write=True,
    ),
    delete=schema.operation(
        "DeleteWebhookEndpoint",
        summary="Delete a webhook endpoint",
        tag="Webhook endpoints",
        response=schema.DeletedWebhookEndpointSerializer,
        path_id=("we", "webhook endpoint"),
        write=True,
    ),
)
class WebhookEndpointApi(StripeApi):
    serializers = {
        "GET": PlainSerializer,
        "POST": WebhookEndpointUpdateSerializer,
        "DELETE": PlainSerializer,
    }

    def perform_get(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        endpoint = webhooks.get_endpoint(merchant_id=self.merchant_id(request), endpoint_id=id)
        return 200, presenters.webhook_endpoint(endpoint)

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        endpoint = webhooks.webhook_endpoint_update(
            merchant=self.client(request).merchant,
            endpoint_id=id,
            url=params.get("url"),
            enabled_events=params.get("enabled_events"),
            description=params.get("description"),
            metadata=params.get("metadata"),
            disabled=params.get("disabled"),
        )
        return 200, presenters.webhook_endpoint(endpoint)

    def perform_delete(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        deleted = webhooks.webhook_endpoint_delete(
            merchant=self.client(request).merchant, endpoint_id=id
        )
        return 200, {"id": deleted.id, "object": "webhook_endpoint", "deleted": True}


@extend_schema_view(
    post=schema.operation(
        "RollWebhookEndpointSecret",
        summary="Roll a webhook endpoint's secret (PayLab only)",
        description="A new `whsec_` secret, returned this once; later attempts are signed with it.",
        tag="Webhook endpoints",
        request=PlainSerializer,
        response=schema.WebhookEndpointSerializer,
        path_id=("we", "webhook endpoint"),
        write=True,
    ),
)
class WebhookEndpointRollSecretApi(StripeApi):
    serializers = {"POST": PlainSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        endpoint = webhooks.webhook_endpoint_roll_secret(
            merchant=self.client(request).merchant, endpoint_id=id
        )
        return 200, presenters.webhook_endpoint(endpoint, with_secret=True)


@extend_schema_view(
    post=schema.operation(
        "ResendWebhookEvents",
        summary="Resend events to a webhook endpoint (PayLab only)",
        description=(
            "`event=evt_…` delivers one event again; `since=<unix seconds>` every event since "
            "then that the endpoint subscribes to and has not received."
        ),
        tag="Webhook endpoints",
        request=WebhookResendSerializer,
        response=schema.WebhookResendResultSerializer,
        path_id=("we", "webhook endpoint"),
        write=True,
    ),
)
class WebhookEndpointResendApi(StripeApi):
    serializers = {"POST": WebhookResendSerializer}

    def perform_post(self, request: Request, params: Params, id: str) -> tuple[int, Body]:
        since = params.get("since")
        delivery_ids = webhooks.webhook_resend(
            merchant=self.client(request).merchant,
            endpoint_id=id,
            event_id=params.get("event"),
            since=datetime.fromtimestamp(since, UTC) if since is not None else None,
        )
        return 200, {
            "object": "webhook_resend",
            "webhook_endpoint": id,
            "deliveries": len(delivery_ids),
        }
