"""``manage.py backtest``: a progress bar on stderr, the summary as a table."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from routing.models import RoutingDecision
from routing.services.drafts import DraftChange
from tests.services.test_backtests import draft, record_traffic, window

pytestmark = pytest.mark.django_db


def test_the_management_command_prints_the_summary(
    fleet: Any, settings: Any, capsys: Any
) -> None:
    record_traffic(settings, ("smart",))
    since, until = window()
    call_command(
        "backtest",
        "--draft",
        str(draft(DraftChange("backends", "update", "local-gpu", {"enabled": False}))),
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--model",
        "llama3.1:8b",
    )
    out, err = capsys.readouterr()
    local = RoutingDecision.objects.filter(backend_name="local-gpu").count()
    llama = RoutingDecision.objects.filter(requested_model="llama3.1:8b").count()
    assert 0 < local < llama
    assert f"] {llama}/{llama} decisions" in err
    lines = {
        name.strip(): value.strip()
        for name, value in (line.rsplit("  ", 1) for line in out.splitlines())
    }
    assert lines["decisions"] == str(llama)
    assert lines["changed"] == str(local)
    assert lines["privacy violations"] == "0"
    assert "backend shift local-gpu->(none)" in out
