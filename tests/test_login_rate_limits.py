"""Failed logins are braked per username and per address, on both login forms."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN_FORMS = ["/login/", "/admin/login/"]


def attempt(client: Client, url: str, password: str, **extra: Any) -> Any:
    return client.post(url, {"username": "olivia", "password": password}, **extra)


@pytest.mark.parametrize("url", LOGIN_FORMS)
def test_thirty_wrong_passwords_then_the_right_one_is_refused_with_429(
    client: Client, operator: Any, url: str
) -> None:
    statuses = [attempt(client, url, f"guess-{n}").status_code for n in range(30)]
    assert statuses[:5] == [200] * 5  # the form again, "wrong password"
    assert set(statuses[5:]) == {429}
    response = attempt(client, url, "pw-olivia")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 900
    assert "Try again in 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_nobody_can_lock_a_user_out_from_another_address(
    client: Client, operator: Any
) -> None:
    for n in range(5):
        attempt(client, "/login/", f"guess-{n}", REMOTE_ADDR="10.0.0.1")
    assert attempt(
        client, "/login/", "pw-olivia", REMOTE_ADDR="10.0.0.1"
    ).status_code == (429)
    response = attempt(client, "/admin/login/", "pw-olivia", REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 302


def test_a_look_alike_spelling_of_a_locked_username_is_locked_too(
    client: Client, operator: Any
) -> None:
    for n in range(5):
        attempt(client, "/login/", f"guess-{n}")
    # Full-width 'ｏ': Django's login form normalises it (NFKC) to 'olivia'.
    response = client.post("/login/", {"username": "ｏlivia", "password": "pw-olivia"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_address_trying_many_usernames_is_refused_after_its_limit(
    client: Client, operator: Any, settings: Any
) -> None:
    settings.NEXUS_LOGIN_FAILURES_PER_ADDRESS = 3
    for n in range(3):
        client.post("/login/", {"username": f"user{n}", "password": "x"})
    assert attempt(client, "/login/", "pw-olivia").status_code == 429
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert attempt(other, "/login/", "pw-olivia").status_code == 302


def test_a_successful_login_forgets_the_usernames_failures(
    client: Client, operator: Any
) -> None:
    for n in range(4):
        attempt(client, "/login/", f"guess-{n}")
    assert attempt(client, "/login/", "pw-olivia").status_code == 302
    client.logout()
    other = Client(REMOTE_ADDR="10.0.0.3")  # the address counter is not reset
    for n in range(4):
        assert attempt(other, "/login/", f"again-{n}").status_code == 200
    assert attempt(other, "/login/", "pw-olivia").status_code == 302
