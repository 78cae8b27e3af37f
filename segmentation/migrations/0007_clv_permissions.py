"""The CLV models' permissions for the shipped roles: operators get every one of them (as every
permission of the app, ``members.roles``), analysts may view runs and scores. Only these
permissions are touched; reversing removes them from the two groups."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "运营 operator": (
        "add_clvrun",
        "change_clvrun",
        "delete_clvrun",
        "view_clvrun",
        "view_memberclv",
        "add_memberclv",
        "change_memberclv",
        "delete_memberclv",
    ),
    "分析 analyst": ("view_clvrun", "view_memberclv"),
}


def _permissions(apps, codenames):
    permission = apps.get_model("auth", "Permission")
    return permission.objects.filter(content_type__app_label="segmentation", codename__in=codenames)


def grant(apps, schema_editor):
    app_config = apps.get_app_config("segmentation")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True  # a migration's apps have none
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(*_permissions(apps, codenames))


def revoke(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("segmentation", "0006_clv"),
        ("members", "0011_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
