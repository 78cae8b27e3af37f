"""Add the playbook's points rewards (``campaigns.playbook.REWARDS``, inactive) to an installation
whose playbook was loaded before the points catalogue existed. Unapplying leaves them in place
(``playbook_uninstall`` removes the unused ones on a live database)."""

from django.db import migrations

from campaigns.playbook import playbook_rewards_install


def install(apps, schema_editor):
    playbook_rewards_install(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0008_reward_permissions"),
        ("segmentation", "0002_default_schemes"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
