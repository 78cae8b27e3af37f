"""The forms of the member 360: what came of a follow-up task, and a points adjustment."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns.services.followups import FollowUpResult
from members.admin import points as points_admin


class FollowUpOutcomeForm(forms.Form):
    """One per open task on the page (``prefix``: the task), posted to that task's address."""

    result = forms.ChoiceField(label=_("What came of it"), choices=FollowUpResult.choices, widget=forms.RadioSelect)
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40, "placeholder": _("Note (optional)")}),
    )


class PointsAdjustForm(points_admin.PointsAdjustForm):
    """The points page's adjustment, for the member the 360 shows (no mobile to type)."""

    member = None
    reason = forms.CharField(label=_("Reason"), max_length=200)


class RefundForm(forms.Form):
    """A refund of one of the member's recent orders, recorded through ``refund_record`` (its points
    taken back, a referral it completed reversed when refunded in full)."""

    order = forms.TypedChoiceField(label=_("Order"), coerce=int)
    amount = forms.DecimalField(label=_("Amount"), max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    reason = forms.CharField(label=_("Reason"), max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, orders=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["order"].choices = [
            (order.pk, f"{order.external_id} · ¥{order.amount - order.refunded_amount}") for order in orders
        ]
