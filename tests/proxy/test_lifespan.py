"""A stopping worker waits for the recordings still running (ASGI lifespan)."""

from __future__ import annotations

import asyncio
from typing import Any


def test_shutdown_completes_only_after_the_recordings_in_flight_end() -> None:
    from nexus_site.asgi import application
    from routing.proxy import views

    events: list[str] = []

    async def scenario() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: dict[str, Any]) -> None:
            events.append(message["type"])

        async def recording() -> None:
            await asyncio.sleep(0.2)
            events.append("recorded")

        serving = asyncio.create_task(
            application({"type": "lifespan"}, inbox.get, send)
        )
        await inbox.put({"type": "lifespan.startup"})
        await asyncio.sleep(0.01)
        views._in_background(recording())
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(serving, timeout=5)

    asyncio.run(scenario())
    assert events == [
        "lifespan.startup.complete",
        "recorded",
        "lifespan.shutdown.complete",
    ]
