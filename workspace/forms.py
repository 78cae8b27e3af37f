"""The forms of the member 360: what came of a follow-up task, and a points adjustment."""

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns.services.followups import FollowUpResult


class FollowUpOutcomeForm(forms.Form):
    """One per open task on the page (``prefix``: the task), posted to that task's address."""

    result = forms.ChoiceField(label=_("What came of it"), choices=FollowUpResult.choices, widget=forms.RadioSelect)
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40, "placeholder": _("Note (optional)")}),
    )


class PointsAdjustForm(forms.Form):
    points = forms.IntegerField(
        label=_("Points"), help_text=_("A positive number adds points, a negative one takes them.")
    )
    reason = forms.CharField(label=_("Reason"), max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("Adjust by a number of points other than zero."))
        return points
