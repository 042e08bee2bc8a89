"""Decisions stored as deltas against a template: the first decision of a model
in a month becomes the template once committed, later ones are deltas that
read back as the same full view; retention removes a month's templates with
its decisions."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction

from routing.api.draft_changes import change_write
from routing.decision_storage import DELTA, EMPTY, VERSION
from routing.dev.bench import BUDGET, REQUEST, build_fleet
from routing.models import DecisionTemplate, RoutingDecision
from routing.pipeline import RoutingContext, default_pipeline
from routing.services import decision_templates
from routing.services.backtests import backtest_request, backtest_run
from routing.services.decision_templates import (
    decision_templates_forget,
    decision_view,
    template_texts,
)
from routing.services.decisions import decision_columns, decision_record
from routing.services.drafts import DraftChange, draft_create
from routing.services.retention import decision_prune_expired
from tests.services.test_backtests import ask, record_traffic, window

pytestmark = pytest.mark.django_db

AT = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def record(result: Any, at: datetime) -> uuid.UUID:
    decision_id = uuid.uuid4()
    decision_record(
        decision_id=decision_id,
        result=result,
        request_id="r",
        client="svc",
        config_version=1,
        created_at=at,
    )
    return decision_id


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Any:
    """``record`` as if each decision's transaction committed (its on-commit
    work runs at once), inside the test's transaction."""

    def record_committed(result: Any, at: datetime) -> uuid.UUID:
        with django_capture_on_commit_callbacks(execute=True):
            return record(result, at)

    return record_committed


def stored(decision_id: uuid.UUID) -> RoutingDecision:
    return RoutingDecision.objects.get(pk=decision_id)


def fifty_backend_results(count: int) -> list[Any]:
    pipeline = default_pipeline()
    return [
        pipeline.route(REQUEST, RoutingContext(build_fleet(50), (BUDGET,)))
        for _ in range(count)
    ]


def test_the_first_decision_of_a_model_in_a_month_becomes_the_template_of_the_next(
    committed: Any,
) -> None:
    results = fifty_backend_results(4)
    ids = [
        committed(result, AT + timedelta(minutes=i)) for i, result in enumerate(results)
    ]
    first, *later = [stored(i) for i in ids]
    assert first.trace["v"] == VERSION
    template = DecisionTemplate.objects.get()
    assert template.text == first.trace["z"]
    assert template.requested_model == REQUEST.model
    assert template.created_at == AT
    for decision, result in zip(later, results[1:], strict=True):
        assert decision.trace["v"] == DELTA
        assert decision.trace["t"] == template.id
        # Tens of bytes instead of the compact JSON's kilobyte and a half.
        assert len(decision.trace["b"]) * 10 < len(template.text)
        columns = decision_columns(result)
        assert decision_view(decision) == {
            key: json.loads(json.dumps(columns[key])) for key in EMPTY
        }


def test_a_template_is_used_only_once_its_transaction_committed() -> None:
    results = fifty_backend_results(3)
    with pytest.raises(RuntimeError), transaction.atomic():
        record(results[0], AT)
        raise RuntimeError("rolled back")
    assert not DecisionTemplate.objects.exists()
    # The rolled-back template was never taken into use: no decision refers to
    # a template that is not there.
    later = stored(record(results[1], AT + timedelta(minutes=1)))
    assert later.trace["v"] == VERSION


def test_a_new_month_starts_a_template_of_its_own(committed: Any) -> None:
    results = fifty_backend_results(3)
    next_month = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    committed(results[0], AT)
    in_june = stored(committed(results[1], next_month))
    same_may = stored(committed(results[2], AT + timedelta(days=3)))
    assert in_june.trace["v"] == VERSION  # June's first: a template of its own
    assert same_may.trace["v"] == DELTA
    assert DecisionTemplate.objects.count() == 2


def test_a_decision_read_in_another_process_fetches_its_template(
    committed: Any,
) -> None:
    results = fifty_backend_results(2)
    committed(results[0], AT)
    delta = committed(results[1], AT + timedelta(seconds=1))
    expected = decision_view(stored(delta))
    decision_templates_forget()  # as a fresh process: nothing in memory
    assert decision_view(stored(delta)) == expected
    DecisionTemplate.objects.all().delete()
    decision_templates_forget()
    with pytest.raises(LookupError, match="is missing"):
        decision_view(stored(delta))


def test_retention_deletes_a_months_templates_with_its_decisions(
    committed: Any,
) -> None:
    results = fifty_backend_results(4)
    committed(results[0], AT)  # May
    committed(results[1], AT + timedelta(days=5))
    committed(results[2], datetime(2026, 6, 20, tzinfo=UTC))  # June
    june = committed(results[3], datetime(2026, 6, 21, tzinfo=UTC))
    assert DecisionTemplate.objects.count() == 2
    # Retention to 2026-06-25 minus 20 days: May's decisions go, and with them
    # May's template; June's (its decisions kept) stays.
    result = decision_prune_expired(
        retention_days=20, now=datetime(2026, 6, 25, tzinfo=UTC)
    )
    assert result.deleted == 2
    assert result.templates_deleted == 1
    assert DecisionTemplate.objects.get().created_at.month == 6
    decision_templates_forget()
    assert decision_view(stored(june))["trace"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_backtest_replays_deltas_as_it_replays_compact_rows(
    settings: Any, fleet: Any
) -> None:
    # Committed calls (no test transaction): templates are taken into use.
    recorded = record_traffic(settings)
    ask("llama3.1:8b", tokens=120)
    forms = [d.trace["v"] for d in RoutingDecision.objects.all()]
    assert forms.count(DELTA) > recorded // 2
    change = DraftChange("backends", "update", "local-gpu", {"privacy_zone": "cloud"})
    draft = draft_create(name="d", changes=[change], actor="o", write=change_write)
    since, until = window()
    summaries = []
    for workers in (1, 2):
        backtest, _ = backtest_request(
            draft_id=draft.pk,
            since=since,
            until=until,
            filters={"client": "svc"},
            actor=f"t{workers}",
            enqueue=False,
        )
        done = backtest_run(
            backtest_id=backtest.pk, write=change_write, workers=workers
        )
        assert done is not None and done.status == "done", done and done.error
        summaries.append(done.summary)
    assert summaries[0] == summaries[1]
    assert summaries[0]["total"] == recorded + 1
    assert summaries[0]["changed"] > 0
    decision_templates_forget()
    assert template_texts(DecisionTemplate.objects.values_list("id", flat=True))


def test_two_shapes_of_traffic_in_turn_keep_a_template_each(
    committed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A strict bar for a delta (a fifth of its text), so the two shapes below
    # are poor deltas against each other's template: a route over fifty
    # backends, and a reject over twenty disabled ones of other names.
    monkeypatch.setattr(decision_templates, "REFRESH_RATIO", 5)
    others = build_fleet(20, seed=5)
    disabled = dataclasses.replace(
        others,
        backends=tuple(
            dataclasses.replace(b, enabled=False, name=f"edge-node-{i}")
            for i, b in enumerate(others.backends)
        ),
    )
    pipeline = default_pipeline()
    contexts = [
        RoutingContext(build_fleet(50), (BUDGET,)),
        RoutingContext(disabled, (BUDGET,)),
    ]
    forms = []
    for i in range(8):
        result = pipeline.route(REQUEST, contexts[i % 2])
        forms.append(stored(committed(result, AT + timedelta(seconds=i))).trace["v"])
    # The first of each shape is a template; then each is a delta against its
    # own shape's, not a new template every other call.
    assert forms == [VERSION, VERSION] + [DELTA] * 6
    assert DecisionTemplate.objects.count() == 2
