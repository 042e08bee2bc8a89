"""URL wiring: admin, API and explorer."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView

from routing.metrics import metrics_view


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers."""
    return JsonResponse({"status": "ok"})


handler400 = "routing.api.exceptions.json_400"
handler404 = "routing.api.exceptions.json_404"
handler500 = "routing.api.exceptions.json_500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("routing.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
