"""``manage.py demo_credentials``: make sure the demo login and API key exist; print them.

The raw secrets are kept in ``NEXUS_DATA_DIR/demo-credentials.json`` (mode 600)
so that the run command can show them again; only hashes are in the database.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from routing.models import ApiKey, hash_api_key
from routing.services.api_keys import api_key_issue

OPERATOR = "operator"
DEMO_KEY = "demo-client"


def _load(path: Path) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


class Command(BaseCommand):
    help = "Ensure the demo operator login and demo API key exist, then print them."

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.DATA_DIR) / "demo-credentials.json"
        saved = _load(path)
        users = get_user_model()
        password = saved.get("password") or secrets.token_urlsafe(12)
        user = users.objects.filter(username=OPERATOR).first()
        if user is None or not user.check_password(password):
            user = user or users(username=OPERATOR, email="operator@example.com")
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        # A superuser may do everything anyway; the group says so in the admin too.
        user.groups.add(*Group.objects.filter(name="admins"))
        key = saved.get("api_key", "")
        if not ApiKey.objects.filter(
            key_hash=hash_api_key(key), is_active=True
        ).exists():
            ApiKey.objects.filter(name=DEMO_KEY).delete()
            _, key = api_key_issue(name=DEMO_KEY, is_admin=True)
        path.write_text(json.dumps({"password": password, "api_key": key}))
        os.chmod(path, 0o600)
        self.stdout.write(f"Login:   {OPERATOR} / {password}")
        self.stdout.write(f"API key: {key}")
