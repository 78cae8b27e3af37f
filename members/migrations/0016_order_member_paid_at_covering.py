"""The orders' member index becomes a covering one, ``(member_id, paid_at) INCLUDE (amount,
refunded_amount)`` (issue #22): the nightly recompute reads it alone in member order. Built
concurrently first and the old index dropped after, so the tills keep writing orders throughout."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("members", "0015_roles_block_erase"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                fields=["member", "paid_at"], include=("amount", "refunded_amount"), name="order_member_paid_at_cover"
            ),
        ),
        RemoveIndexConcurrently(model_name="order", name="order_member_paid_at"),
    ]
