"""The recompute lock row was for SQLite, which has no advisory locks; PostgreSQL's advisory lock
(``members.advisory_locks``) keeps runs from overlapping."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0003_snapshot_lz4")]

    operations = [migrations.DeleteModel(name="RecomputeLock")]
