"""The admin lists drafts read-only: they change through the drafts API."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from routing.api.draft_changes import change_write
from routing.models import Draft
from routing.services.drafts import DraftChange, draft_create

pytestmark = pytest.mark.django_db


def test_the_admin_shows_drafts_and_changes_none(
    admin_client_as_operator: Any,
) -> None:
    draft = draft_create(
        name="move rack",
        changes=[DraftChange("zones", "create", "eu")],
        actor="olivia",
        write=change_write,
    )
    changelist = admin_client_as_operator.get(reverse("admin:routing_draft_changelist"))
    assert changelist.status_code == 200
    assert "move rack" in changelist.content.decode()
    delete = reverse("admin:routing_draft_delete", args=[draft.pk])
    assert admin_client_as_operator.post(delete, {"post": "yes"}).status_code == 403
    assert (
        admin_client_as_operator.get(reverse("admin:routing_draft_add")).status_code
        == 403
    )
    assert Draft.objects.filter(pk=draft.pk).exists()
