"""Stamp cards' data: seed 001's card (重要发展用户: 满5次送1次) and the coupon template it issues,
inactive — what ``campaigns.playbook`` adds to an installation that loaded the playbook before
stamp cards — and the new models' permissions for the shipped roles (operators get every one, as
every permission of the app; managers and analysts view the cards; staff view completions).

Unapplying removes the permissions from the groups and leaves the rows in place (the card is
inactive, and unapplying 0007 drops the table)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "运营 operator": tuple(
        f"{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("stampcard", "stamp", "stampcompletion")
    ),
    "店长 store manager": ("view_stampcard", "view_stampcompletion"),
    "店员 store staff": ("view_stampcompletion",),
    "分析 analyst": ("view_stampcard",),
}


def _permissions(apps, codenames):
    permission = apps.get_model("auth", "Permission")
    return permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames)


def install(apps, schema_editor):
    from campaigns.playbook import playbook_install

    playbook_install(apps)
    app_config = apps.get_app_config("campaigns")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True  # a migration's apps have none
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, codenames))


def uninstall(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0010_stamp_cards"),
        ("members", "0011_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
