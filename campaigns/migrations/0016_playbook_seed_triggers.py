"""Add the playbook's remaining automations (seed 002's four and seed 001's birthday care, all
inactive, ``campaigns.playbook.TRIGGERS``) with the coupon templates they give, to an installation
that has the rest of the playbook. Unapplying removes the triggers while they are unused."""

from django.db import migrations


def install(apps, schema_editor):
    from campaigns.playbook import playbook_install_triggers

    playbook_install_triggers(apps)


def uninstall(apps, schema_editor):
    from campaigns.playbook import TRIGGERS

    names = [spec["names"][0] for key, spec in TRIGGERS.items() if key != "playbook-champions-related-products"]
    apps.get_model("campaigns", "Trigger").objects.filter(
        name__in=names, is_active=False, firings__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0015_birthday_trigger"),
        ("segmentation", "0002_default_schemes"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
