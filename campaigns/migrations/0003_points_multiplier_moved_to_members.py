"""Points multipliers move to ``members`` (data that points earning reads, no provider callback):
copy the rows, keep their ids, then drop the old table. The campaign link becomes the ``source``
text the rows already carry (``campaign:<slug>``)."""

from django.db import migrations

COPY = """
INSERT INTO members_memberpointsmultiplier
    (id, created_at, updated_at, member_id, multiplier, starts_at, ends_at, source, idempotency_key)
SELECT id, created_at, updated_at, member_id, multiplier, starts_at, ends_at, source, idempotency_key
FROM campaigns_memberpointsmultiplier;
SELECT setval(pg_get_serial_sequence('members_memberpointsmultiplier', 'id'),
              COALESCE((SELECT MAX(id) FROM members_memberpointsmultiplier), 0) + 1, false);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_playbook"),
        ("members", "0007_member_points_multiplier"),
    ]

    operations = [
        migrations.RunSQL(COPY, migrations.RunSQL.noop),
        migrations.DeleteModel(name="MemberPointsMultiplier"),
    ]
