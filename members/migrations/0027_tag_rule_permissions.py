"""Tag rules' permissions for the shipped roles (``members.roles``): operators get all of them (as
every permission of the app); analysts may view them. Only these permissions are touched; reversing
removes them from the groups."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ALL = tuple(f"{action}_tagrule" for action in ("add", "change", "delete", "view"))
VIEW = ("view_tagrule",)
GRANTS = {"运营 operator": ALL, "分析 analyst": VIEW}


def _permissions(apps, codenames):
    permission = apps.get_model("auth", "Permission")
    return permission.objects.filter(content_type__app_label="members", codename__in=codenames)


def grant(apps, schema_editor):
    app_config = apps.get_app_config("members")
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
        ("members", "0026_tag_rules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
