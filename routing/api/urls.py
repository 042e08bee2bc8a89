"""``/api/v1/`` routes."""

from __future__ import annotations

from django.urls import path, re_path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.routers import DefaultRouter

from routing.api import actions, backtests, drafts, views

app_name = "api"

#: Swagger UI and ReDoc come from Nexus's static files (drf-spectacular-sidecar)
#: but style their widgets with inline styles.
DOCS_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    # ReDoc searches in a web worker it starts from a blob.
    "worker-src": [CSP.SELF, "blob:"],
}

router = DefaultRouter(trailing_slash=True)
router.register("zones", views.ZoneViewSet, basename="zone")
router.register("backends", views.BackendViewSet, basename="backend")
router.register("aliases", views.AliasViewSet, basename="alias")
router.register("fallbacks", views.FallbackChainViewSet, basename="fallback")
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("budgets", views.BudgetViewSet, basename="budget")
router.register("decisions", views.DecisionViewSet, basename="decision")
router.register("drafts", drafts.DraftViewSet, basename="draft")
router.register("backtests", backtests.BacktestViewSet, basename="backtest")

urlpatterns = [
    path("route", actions.RouteApi.as_view(), name="route"),
    path("usage", actions.UsageApi.as_view(), name="usage"),
    path("pipeline/", actions.PipelineApi.as_view(), name="pipeline"),
    path("spend/", views.SpendApi.as_view(), name="spend"),
    re_path(
        rf"^drafts/(?P<pk>{drafts.DRAFT_ID})/apply$",
        drafts.DraftApplyApi.as_view(),
        name="draft-apply",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        csp_override(DOCS_CSP)(
            SpectacularSwaggerSplitView.as_view(url_name="api:schema")
        ),
        name="docs",
    ),
    path(
        "redoc/",
        csp_override(DOCS_CSP)(SpectacularRedocView.as_view(url_name="api:schema")),
        name="redoc",
    ),
    *router.urls,
]
