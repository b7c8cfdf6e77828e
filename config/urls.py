from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from accounts.api import AccountRetrieveApi
from config import api, views

admin.site.site_header = "PayLab administration"
admin.site.site_title = "PayLab admin"
admin.site.index_title = "Merchants, users, keys and payments"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    # The schema keeps DRF's negotiation (`?format=json`, `Accept`): the
    # project default, `AlwaysJson`, would always pick its first renderer, YAML.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation),
        name="api-schema",
    ),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("v1/account", AccountRetrieveApi.as_view(), name="api-account"),
    path("v1/", include("payments.api.urls")),
    path("v1/simulator/", include("simulator.api.urls")),
    path("simulator/", include("simulator.urls")),
    path("", include("payments.urls")),
    re_path(r"^v1/(?P<path>.*)$", api.unknown_url),
    path("", include("analytics.urls")),
]
