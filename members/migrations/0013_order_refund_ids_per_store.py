"""Order and refund external ids unique per store (issue #20, finding 1); a refund names its store."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0012_import_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="store",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="refunds",
                to="members.store",
                verbose_name="store",
            ),
        ),
        migrations.RunSQL(
            "UPDATE members_refund r SET store_id = o.store_id FROM members_order o WHERE o.id = r.order_id",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="refund",
            name="store",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="refunds",
                to="members.store",
                verbose_name="store",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="external_id",
            field=models.CharField(max_length=64, verbose_name="external order id"),
        ),
        migrations.AlterField(
            model_name="refund",
            name="external_id",
            field=models.CharField(max_length=64, verbose_name="external refund id"),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(fields=("store", "external_id"), name="order_store_external_id"),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(fields=("store", "external_id"), name="refund_store_external_id"),
        ),
    ]
