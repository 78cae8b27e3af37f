"""Add the playbook's "related products 3 days after a champion buys" trigger (inactive) to an
installation that has the rest of the playbook (``campaigns.playbook.playbook_install_triggers``).
Unapplying removes it while it is unused."""

from django.db import migrations


def install(apps, schema_editor):
    from campaigns.playbook import playbook_install_triggers

    playbook_install_triggers(apps)


def uninstall(apps, schema_editor):
    from campaigns.playbook import playbook_trigger_names

    names = playbook_trigger_names()
    apps.get_model("campaigns", "Trigger").objects.filter(
        name__in=names, is_active=False, firings__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0012_favourite_category_narrowing"),
        ("segmentation", "0002_default_schemes"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
