"""Nexus models, split by concern; import them from ``routing.models``."""

from __future__ import annotations

from routing.models.access import ApiKey, generate_api_key, hash_api_key
from routing.models.audit import AuditAction, AuditEntry, ConfigVersion
from routing.models.backtests import (
    ACTIVE_STATUSES,
    Backtest,
    BacktestChange,
    BacktestStatus,
)
from routing.models.budgets import (
    AlertStatus,
    Budget,
    BudgetAlert,
    LedgerEntry,
    LedgerKind,
    UsageReport,
)
from routing.models.config import (
    Alias,
    Backend,
    BackendModel,
    FallbackChain,
    PrivacyZone,
    TrafficPolicy,
)
from routing.models.decisions import (
    DecisionExclusion,
    DecisionTemplate,
    RoutingDecision,
)
from routing.models.drafts import DRAFT_ACTIONS, DRAFT_RESOURCES, Draft, DraftStatus
from routing.models.spend import SpendDaily

__all__ = [
    "ACTIVE_STATUSES",
    "Backtest",
    "BacktestChange",
    "BacktestStatus",
    "AlertStatus",
    "Alias",
    "ApiKey",
    "AuditAction",
    "AuditEntry",
    "Backend",
    "BackendModel",
    "Budget",
    "BudgetAlert",
    "ConfigVersion",
    "DRAFT_ACTIONS",
    "DRAFT_RESOURCES",
    "DecisionExclusion",
    "DecisionTemplate",
    "Draft",
    "DraftStatus",
    "FallbackChain",
    "LedgerEntry",
    "LedgerKind",
    "PrivacyZone",
    "RoutingDecision",
    "SpendDaily",
    "TrafficPolicy",
    "UsageReport",
    "generate_api_key",
    "hash_api_key",
]
