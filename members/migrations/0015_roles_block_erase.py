"""The operator role gets the new permissions to block and to erase members (``members.roles``)."""

from django.db import migrations

from members.roles import roles_install


def install(apps, schema_editor):
    roles_install(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0014_top_up_limits_member_active"),
        ("segmentation", "0004_drop_recompute_lock"),
        ("campaigns", "0003_points_multiplier_moved_to_members"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
