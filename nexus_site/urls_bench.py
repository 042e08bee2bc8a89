"""URLs for the load benchmark only: the product plus a one-INSERT endpoint.

Served only when ``NEXUS_ROOT_URLCONF=nexus_site.urls_bench`` (set by
``manage.py bench_api`` for the gunicorn it starts), never by default.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from nexus_site.urls import urlpatterns as product_urlpatterns
from routing.models import RoutingDecision


@csrf_exempt
def insert_one(request: HttpRequest) -> JsonResponse:
    """The framework ceiling: parse nothing, INSERT one decision row, answer JSON."""
    decision = RoutingDecision.objects.create(
        id=uuid.uuid4(),
        request_id="bench-ceiling",
        created_at=timezone.now(),
        outcome="route",
        requested_model="bench",
        model="bench",
        client="bench:ceiling",
    )
    return JsonResponse({"decision_id": str(decision.pk)})


urlpatterns = [path("bench/insert", insert_one), *product_urlpatterns]
