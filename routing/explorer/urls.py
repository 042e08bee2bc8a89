"""Explorer URLs (mounted at the site root)."""

from __future__ import annotations

from django.urls import path

from routing.explorer.views import (
    backends,
    backtests,
    config,
    decisions,
    detail,
    drafts,
    simulate,
    spend,
)

app_name = "explorer"

urlpatterns = [
    path("", decisions.decision_list, name="decisions"),
    path("decisions/feed/", decisions.decision_live_feed, name="decision-feed"),
    path("decisions/<uuid:decision_id>/", detail.decision_detail, name="decision"),
    path(
        "decisions/<uuid:decision_id>/rerun/",
        detail.decision_rerun_view,
        name="decision-rerun",
    ),
    path("simulate/", simulate.simulate, name="simulate"),
    path("backends/", backends.backend_list, name="backends"),
    path("backends/<slug:name>/row/", backends.backend_row, name="backend-row"),
    path("backends/<slug:name>/edit/", backends.backend_edit, name="backend-edit"),
    path("spend/", spend.spend_page, name="spend"),
    path("spend/outcomes/", spend.outcomes_panel, name="spend-outcomes"),
    path("spend/budgets/new/", spend.budget_new, name="budget-new"),
    path("spend/budgets/<slug:name>/", spend.budget_card, name="budget-card"),
    path("spend/budgets/<slug:name>/edit/", spend.budget_edit, name="budget-edit"),
    path("budget/", spend.budget_redirect, name="budget"),
    path("config/", config.config_history, name="config"),
    path("drafts/", drafts.draft_list, name="drafts"),
    path("drafts/<int:draft_id>/", drafts.draft_detail, name="draft"),
    path(
        "drafts/<int:draft_id>/changes/<slug:resource>/",
        drafts.draft_change,
        name="draft-change",
    ),
    path(
        "drafts/<int:draft_id>/changes/<int:index>/remove/",
        drafts.draft_change_remove_view,
        name="draft-change-remove",
    ),
    path("drafts/<int:draft_id>/apply/", drafts.draft_apply_view, name="draft-apply"),
    path(
        "drafts/<int:draft_id>/discard/",
        drafts.draft_discard_view,
        name="draft-discard",
    ),
    path("backtests/new/", backtests.backtest_new, name="backtest-new"),
    path("backtests/<int:backtest_id>/", backtests.backtest_detail, name="backtest"),
    path(
        "backtests/<int:backtest_id>/cancel/",
        backtests.backtest_cancel_view,
        name="backtest-cancel",
    ),
    path(
        "backtests/<int:backtest_id>/changes/<uuid:decision_id>/",
        backtests.backtest_change,
        name="backtest-change",
    ),
]
