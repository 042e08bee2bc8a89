"""A Celery broker that refuses connections: a closed port on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

#: Nothing listens on port 1: connecting is refused at once by the kernel.
UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def unreachable_broker() -> Iterator[str]:
    """Point the Celery app at a closed port for one test (fresh connection pools)."""
    from kombu import pools

    from nexus_site.celery import app

    def forget_pools() -> None:
        pools.reset()  # kombu's process-wide producer pools, keyed by connection
        app._pool = app.amqp._producer_pool = None

    keys = ("broker_url", "broker_write_url", "broker_transport_options")
    saved = {key: app.conf[key] for key in keys}
    forget_pools()
    app.conf.update(
        broker_url=UNREACHABLE_BROKER_URL,
        broker_write_url=UNREACHABLE_BROKER_URL,  # else CELERY_BROKER_URL wins
        broker_transport_options={"socket_connect_timeout": 2},
    )
    assert app.connection_for_write().port == 1
    try:
        yield UNREACHABLE_BROKER_URL
    finally:
        forget_pools()
        app.conf.update(saved)


def enqueue_failures(task: str) -> float:
    """The ``nexus_enqueue_failures_total`` counter for ``task``."""
    from routing.metrics import REGISTRY

    value = REGISTRY.get_sample_value("nexus_enqueue_failures_total", {"task": task})
    return value or 0.0
