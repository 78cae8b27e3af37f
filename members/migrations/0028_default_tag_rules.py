"""The rule tags an installation starts with (seed 000's 客户标签体系), all inactive until an operator
switches them on: 生日月 (birthday this month), 高客单 (an average order of ¥80 or more over at least
two orders in 180 days), 周末客 (60% or more of at least three orders in 180 days at weekends) and
偏好· + the favourite category. Found by name; an existing rule of that name is left as it is.
Unapplying removes them while inactive."""

from decimal import Decimal

from django.db import migrations

RULES = (
    {"name": "生日月", "kind": "birthday_month"},
    {"name": "高客单", "kind": "high_average_order", "average_at_least": Decimal("80.00"), "min_orders": 2},
    {"name": "周末客", "kind": "weekend", "weekend_share_at_least": 60, "min_orders": 3},
    {"name": "偏好·", "kind": "favourite_category"},
)


def install(apps, schema_editor):
    tag_rule = apps.get_model("members", "TagRule")
    for fields in RULES:
        fields = dict(fields)
        tag_rule.objects.get_or_create(name=fields.pop("name"), defaults={**fields, "window_days": 180})


def uninstall(apps, schema_editor):
    apps.get_model("members", "TagRule").objects.filter(
        name__in=[rule["name"] for rule in RULES], is_active=False
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("members", "0027_tag_rule_permissions")]

    operations = [migrations.RunPython(install, uninstall)]
