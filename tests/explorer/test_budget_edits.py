"""Staff create and edit budgets on the Spend page: audited through config_save,
inline errors at the right field, htmx or plain POST, permission and CSRF."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from routing.models import AuditEntry, Budget
from routing.services.config import config_version_current
from tests.factories import UsageReportFactory

pytestmark = pytest.mark.django_db

SPEND = reverse("explorer:spend")
NEW = reverse("explorer:budget-new")


def form(**fields: Any) -> dict[str, Any]:
    """A complete budget form; ``fields`` override."""
    data: dict[str, Any] = {
        "name": "cloud",
        "monthly_limit_usd": "500",
        "soft_limit_percent": "75",
        "hard_limit_action": "block_cloud",
        "reset_day": "1",
        "clients": "",
        "models": "",
        "zones": ["cloud"],
        "backends": [],
        "alert_thresholds": "50, 80, 100",
        "alert_webhook_url": "",
    }
    data.update(fields)
    return data


def field_block(html: str, name: str) -> str:
    """The markup of one form field, its errors included."""
    start = html.index(f'class="field field-{name}')
    return html[start : html.index("</div>", start)]


@pytest.fixture
def operations_client(client, django_user_model):  # type: ignore[no-untyped-def]
    """Someone in the ``operators`` group: may view budgets, not change them."""
    user = django_user_model.objects.create_user(username="oscar", password="pw")
    user.groups.add(Group.objects.get(name="operators"))
    client.force_login(user)
    return client


def test_staff_create_a_scoped_budget_audited_counting_the_period_so_far(
    staff_client, fleet
):
    UsageReportFactory(
        cost_usd=Decimal("4.25"), decision__backend_name="cloud-gpt"
    )  # cloud, this period
    UsageReportFactory(cost_usd=Decimal("9"), decision__backend_name="local-gpu")
    version = config_version_current()
    response = staff_client.post(NEW, form(), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    part = response.content.decode()
    assert part.strip().startswith('<section id="budgets">')
    assert 'id="budget-cloud"' in part and 'id="budget-global"' in part
    budget = Budget.objects.get(name="cloud")
    assert budget.scope == {"zones": ["cloud"]}
    assert budget.alert_thresholds == [50, 80, 100]
    assert budget.monthly_limit_usd == Decimal("500")
    assert budget.spent_usd == Decimal("4.25")  # the cloud usage only
    assert '<dd class="spent">$4.25</dd>' in part
    assert config_version_current() == version + 1
    audit = AuditEntry.objects.filter(object_type="budget", object_name="cloud")
    assert set(audit.values_list("actor", flat=True)) == {"olivia"}
    assert {"scope", "monthly_limit_usd", "alert_thresholds"} <= set(
        audit.values_list("field", flat=True)
    )
    assert audit.get(field="scope").new_value == "zones: cloud"


def test_a_client_budget_from_comma_separated_names_and_globs(staff_client, fleet):
    response = staff_client.post(
        NEW,
        form(
            name="team-a",
            monthly_limit_usd="",
            zones=[],
            clients=" team-a-app, team-a-batch ,",
            models="gpt-*, claude-*",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == f"{SPEND}#budget-team-a"
    budget = Budget.objects.get(name="team-a")
    assert budget.scope == {
        "clients": ["team-a-app", "team-a-batch"],
        "models": ["gpt-*", "claude-*"],
    }
    assert budget.monthly_limit_usd is None  # tracking only


@pytest.mark.parametrize(
    ("fields", "at", "message"),
    [
        ({"zones": ["mars"]}, "zones", "Unknown zone(s) &#x27;mars&#x27;"),
        ({"backends": ["nope"]}, "backends", "Unknown backend(s) &#x27;nope&#x27;"),
        ({"models": "gpt-[4"}, "models", "gpt-[4"),
        ({"alert_thresholds": "80, lots"}, "alert_thresholds", "not a whole percent"),
        ({"alert_thresholds": "0"}, "alert_thresholds", "between 1 and 1000"),
        ({"reset_day": "31"}, "reset_day", "Reset day"),
        ({"monthly_limit_usd": "-5"}, "monthly_limit_usd", "Monthly limit"),
        ({"name": "Not A Slug"}, "name", "lower-case letters"),
        ({"alert_webhook_url": "ftp:x"}, "alert_webhook_url", "URL"),
    ],
)
def test_a_bad_value_is_shown_at_its_field_and_nothing_is_saved(
    staff_client, fleet, fields, at, message
):
    version, audited = config_version_current(), AuditEntry.objects.count()
    response = staff_client.post(NEW, form(**fields), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    html = response.content.decode()
    assert "field-error" in field_block(html, at)
    assert message in field_block(html, at), field_block(html, at)
    assert not Budget.objects.filter(name="cloud").exists()
    assert (config_version_current(), AuditEntry.objects.count()) == (version, audited)


def test_editing_a_budget_swaps_its_card_for_a_form_and_back(staff_client, fleet):
    edit = reverse("explorer:budget-edit", args=["global"])
    html = staff_client.get(edit, HTTP_HX_REQUEST="true").content.decode()
    assert html.strip().startswith('<section class="card budget editing"')
    assert f'hx-post="{edit}"' in html and "csrfmiddlewaretoken" in html
    assert 'hx-target="closest section.budget"' in html
    response = staff_client.post(
        edit,
        form(name="global", zones=[], monthly_limit_usd="250", alert_thresholds="90"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    part = response.content.decode()
    assert part.strip().startswith('<section class="card budget" id="budget-global">')
    assert "saved · v" in part and 'hx-swap-oob="true"' in part
    budget = Budget.objects.get(name="global")
    assert budget.monthly_limit_usd == Decimal("250")
    assert budget.alert_thresholds == [90]
    cancel = staff_client.get(
        reverse("explorer:budget-card", args=["global"]), HTTP_HX_REQUEST="true"
    )
    assert cancel.content.decode().strip().startswith('<section class="card budget"')


def test_the_global_budget_cannot_be_renamed_and_says_so_at_the_name(staff_client):
    edit = reverse("explorer:budget-edit", args=["global"])
    response = staff_client.post(edit, form(name="everything", zones=[]))
    assert response.status_code == 422
    html = response.content.decode()
    assert "is built in" in field_block(html, "name")
    assert "<html" in html  # the whole page, without htmx
    assert Budget.objects.filter(name="global").exists()


def test_without_javascript_the_forms_are_pages_and_posts_redirect(staff_client, fleet):
    page = staff_client.get(NEW)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and f'method="post" action="{NEW}"' in html
    assert '<section id="window">' in html  # the rest of the page is there too
    created = staff_client.post(NEW, form())
    assert created.status_code == 302 and created["Location"].endswith("#budget-cloud")
    edit = reverse("explorer:budget-edit", args=["cloud"])
    assert "<html" in staff_client.get(edit).content.decode()
    saved = staff_client.post(edit, form(monthly_limit_usd="600"))
    assert saved.status_code == 302
    assert Budget.objects.get(name="cloud").monthly_limit_usd == Decimal("600")
    refused = staff_client.post(edit, form(zones=["mars"]))
    assert refused.status_code == 422
    assert "Unknown zone" in field_block(refused.content.decode(), "zones")
    card = staff_client.get(reverse("explorer:budget-card", args=["cloud"]))
    assert card.status_code == 302  # a card alone is an htmx fragment


def test_an_operator_without_the_permission_sees_no_edit_controls_and_gets_403(
    operations_client, fleet
):
    html = operations_client.get(SPEND).content.decode()
    assert 'id="budget-global"' in html
    assert NEW not in html and "/edit/" not in html
    edit = reverse("explorer:budget-edit", args=["global"])
    assert operations_client.post(NEW, form()).status_code == 403
    assert operations_client.get(NEW).status_code == 403
    assert operations_client.post(edit, form(name="global")).status_code == 403
    assert not Budget.objects.filter(name="cloud").exists()


def test_a_post_without_the_csrf_token_is_refused(operator, fleet):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    assert browser.post(NEW, form()).status_code == 403
    assert not Budget.objects.filter(name="cloud").exists()
    browser.get(SPEND)  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(NEW, form(), HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert Budget.objects.filter(name="cloud").exists()


def test_an_unknown_budget_is_a_404(staff_client):
    assert (
        staff_client.get(reverse("explorer:budget-edit", args=["nope"])).status_code
        == 404
    )


def test_the_configuration_history_links_a_budget_change_to_its_card(staff_client):
    edit = reverse("explorer:budget-edit", args=["global"])
    staff_client.post(edit, form(name="global", zones=[], monthly_limit_usd="123"))
    html = staff_client.get(reverse("explorer:config")).content.decode()
    assert f'href="{SPEND}#budget-global"' in html
