"""The two ready groups: ``operators`` and ``admins`` (Django model permissions).

``operators`` may view every Nexus model and operate backends (change their
zone, tier, priority and enabled flag: ``routing.operate_backend``, the
explorer's inline edit); ``admins`` may add, change, delete
and view every Nexus model, and view users and groups. Django creates
permissions after all migrations (``post_migrate``), so this migration creates
the ones it needs first. Running it again only adds what is missing.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

OPERATORS = "operators"
ADMINS = "admins"
ACTIONS = ("add", "change", "delete", "view")


def _permissions(apps, app_label: str, codenames: set[str]) -> list:
    Permission = apps.get_model("auth", "Permission")
    return list(
        Permission.objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )
    )


def create_groups(apps, schema_editor):
    db = schema_editor.connection.alias if schema_editor else "default"
    for label in ("auth", "routing"):
        create_permissions(
            global_apps.get_app_config(label), verbosity=0, using=db, apps=apps
        )
    models = [m._meta.model_name for m in apps.get_app_config("routing").get_models()]
    Group = apps.get_model("auth", "Group")
    operators, _ = Group.objects.using(db).get_or_create(name=OPERATORS)
    operators.permissions.add(
        *_permissions(
            apps, "routing", {f"view_{m}" for m in models} | {"operate_backend"}
        )
    )
    admins, _ = Group.objects.using(db).get_or_create(name=ADMINS)
    admins.permissions.add(
        *_permissions(
            apps,
            "routing",
            {f"{a}_{m}" for a in ACTIONS for m in models} | {"operate_backend"},
        ),
        *_permissions(apps, "auth", {"view_user", "view_group"}),
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=[OPERATORS, ADMINS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0006_decision_api_key"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [
        migrations.AlterModelOptions(
            name="backend",
            options={
                "ordering": ["priority", "name"],
                "permissions": [
                    (
                        "operate_backend",
                        "Can change a backend's zone, tier, priority and enabled flag",
                    )
                ],
            },
        ),
        migrations.RunPython(create_groups, remove_groups),
    ]
