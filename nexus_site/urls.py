"""URL wiring: admin, API and explorer."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path

from routing.metrics import metrics_view
from routing.rate_limits import login_rate_limited
from routing.readiness import readiness_checks


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database (and Redis, when configured) answers,
    else 503 naming what failed."""
    checks = readiness_checks()
    failed = {name: error for name, error in checks.items() if error is not None}
    body = {
        "status": "unavailable" if failed else "ok",
        "checks": {name: error or "ok" for name, error in checks.items()},
    }
    return JsonResponse(body, status=503 if failed else 200)


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on their own; the icon is a static SVG
    (looked up per request: the hashed name exists only after collectstatic)."""
    return HttpResponsePermanentRedirect(static("explorer/favicon.svg"))


handler400 = "routing.api.exceptions.json_400"
handler404 = "routing.api.exceptions.json_404"
handler500 = "routing.api.exceptions.json_500"

urlpatterns = [
    # Before admin/: the admin's own login view, with the failed-login brake.
    path("admin/login/", login_rate_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("routing.api.urls")),
    path("v1/", include("routing.proxy.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("favicon.ico", favicon, name="favicon"),
    path("metrics", metrics_view, name="metrics"),
    path(
        "login/",
        login_rate_limited(
            auth_views.LoginView.as_view(redirect_authenticated_user=True)
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("routing.explorer.urls")),
]
