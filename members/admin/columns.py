"""Change-list columns that show a model field for people (``members.formatting``): money as
``¥1,200.00``, rates as percentages, multipliers as ``×1.5``, counts with separators.

``principal_yuan = money_column(Wallet, "principal")`` in an admin's body, and ``"principal_yuan"``
in its ``list_display``: the column keeps the field's label and sorts by the field.
"""

from decimal import Decimal

from django.contrib import admin

from members.formatting import MISSING, count, percent, yuan


def _column(model, field_name: str, render, description=None):
    field = model._meta.get_field(field_name)

    @admin.display(description=description or field.verbose_name, ordering=field_name)
    def column(self, obj):
        return render(getattr(obj, field_name))

    column.__name__ = f"{field_name}_shown"
    return column


def money_column(model, field_name: str, description=None):
    return _column(model, field_name, yuan, description)


def percent_column(model, field_name: str, description=None):
    return _column(model, field_name, percent, description)


def count_column(model, field_name: str, description=None):
    return _column(model, field_name, count, description)


def times(value) -> str:
    """``Decimal("1.50")`` → ``×1.5``; ``2`` → ``×2``."""
    if value is None or value == "":
        return MISSING
    text = f"{Decimal(str(value)).normalize():f}"
    return f"×{text}"


def multiplier_column(model, field_name: str, description=None):
    return _column(model, field_name, times, description)
