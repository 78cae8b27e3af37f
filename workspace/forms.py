"""The forms of the member 360: what came of a follow-up task, and a points adjustment."""

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
