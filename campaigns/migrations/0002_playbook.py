"""Load the seeds' playbook: one draft campaign per default segment, seed 002's top-up offers and
referral reward rules — all inactive until an operator turns them on.

Unapplying leaves the rows in place (they are inactive, and unapplying 0001 drops the tables);
``campaigns.playbook.playbook_uninstall`` removes the unused ones on a live database.
"""

from django.db import migrations


def install(apps, schema_editor):
    from campaigns.playbook import playbook_install

    playbook_install(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("segmentation", "0002_default_schemes"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
