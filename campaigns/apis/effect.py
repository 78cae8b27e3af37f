"""The effect reports as an API for dashboards: staff users only (``IsAdminUser``), signed in to
the admin (the Django session; no password is ever taken here, so none can be guessed here — the
admin's sign-in is guarded by django-axes), throttled per user (``staff_report``). ``?format=csv``
answers the same report as CSV.

- ``GET /api/v1/campaigns/<id>/effect?days=14`` — ``campaigns.selectors.effect.campaign_effect``,
  with ``engagement``: the campaign's messages sent, delivered, opened and clicked, open and click
  rates over sent, in total and per segment when granted
- ``GET /api/v1/campaigns/segment-report?from_run=<id>&to_run=<id>[&lapsed_days=N]`` —
  ``campaigns.selectors.effect.segment_report``

Amounts and rates travel as decimal strings.
"""

import csv
import io

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import Campaign
from campaigns.selectors.effect import (
    DEFAULT_DAYS,
    campaign_effect,
    campaign_effect_csv_rows,
    segment_report,
    segment_report_csv_rows,
)
from members.apis.base import ApiAutoSchema
from members.apis.throttling import ApiScopedThrottle
from segmentation.models import RfmRun


class CsvRenderer(BaseRenderer):
    """Rows (lists) as CSV, UTF-8 with a BOM so spreadsheet programs read Chinese right. An error
    (a dict) becomes ``key,value`` rows."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict):
            data = [["field", "detail"], *([key, value] for key, value in data.items())]
        buffer = io.StringIO()
        csv.writer(buffer).writerows(data or [])
        return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def csv_response(rows: list[list], filename: str) -> Response:
    return Response(rows, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def succeeded_run_pair(*, from_run_id: int, to_run_id: int) -> tuple[RfmRun, RfmRun]:
    """The two successful runs a report compares (404 when one is not), the second not older (400)."""
    runs = RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED)
    from_run = get_object_or_404(runs, pk=from_run_id)
    to_run = get_object_or_404(runs, pk=to_run_id)
    if to_run.as_of < from_run.as_of:
        raise serializers.ValidationError({"to_run": [_("Choose a run as of the same day as the first, or later.")]})
    return from_run, to_run


def _money(**kwargs):
    return serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, **kwargs)


def _rate(**kwargs):
    return serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True, **kwargs)


class EffectGroupSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = _rate()
    revenue = _money()
    revenue_per_member = _money()
    revenue_variance = _money()


class EngagementFiguresSerializer(serializers.Serializer):
    messages = serializers.IntegerField(help_text=_("Messages the treated grants wrote."))
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField(
        help_text=_("Reported delivered by the channel (not every channel reports it).")
    )
    opened = serializers.IntegerField(help_text=_("Opened at least once (a tracked link followed counts)."))
    clicked = serializers.IntegerField(help_text=_("A tracked link followed at least once."))
    open_rate = _rate(help_text=_("Opened / sent."))
    click_rate = _rate(help_text=_("Clicked / sent."))


class SegmentEngagementSerializer(EngagementFiguresSerializer):
    segment_id = serializers.IntegerField(allow_null=True, help_text=_("The member's segment when granted."))
    slug = serializers.CharField()
    name_zh = serializers.CharField()
    name_en = serializers.CharField()


class EngagementSerializer(EngagementFiguresSerializer):
    rate_base = serializers.CharField(help_text=_("What the rates are over: the messages sent."))
    segments = SegmentEngagementSerializer(many=True)


class CampaignRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    status = serializers.CharField()


class RunRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    as_of = serializers.DateField()


class SegmentFiguresSerializer(serializers.Serializer):
    segment_id = serializers.IntegerField(allow_null=True)
    slug = serializers.CharField()
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    size = serializers.IntegerField()
    size_to = serializers.IntegerField()
    repurchasers = serializers.IntegerField()
    repurchase_rate = _rate()
    lapsed = serializers.IntegerField()
    reactivated = serializers.IntegerField()
    reactivation_rate = _rate()
    revenue = _money()
    orders = serializers.IntegerField()
    spend_per_member = _money()
    average_order_value = _money()
    retained_7d = serializers.IntegerField()
    retention_7d = _rate()
    retained_30d = serializers.IntegerField()
    retention_30d = _rate()


class StaffReportApi(APIView):
    """Staff only: anyone else (anonymous, a member's token, a store's key) gets a 403 in the API's
    one error shape, which the schema documents with the other error responses."""

    schema = ApiAutoSchema()
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAdminUser]
    throttle_classes = [ApiScopedThrottle]
    throttle_scope = "staff_report"
    renderer_classes = [JSONRenderer, CsvRenderer]
    extra_error_statuses = (400,)


class CampaignEffectApi(StaffReportApi):
    class InputSerializer(serializers.Serializer):
        days = serializers.IntegerField(min_value=1, max_value=365, default=DEFAULT_DAYS)

    class OutputSerializer(serializers.Serializer):
        campaign = CampaignRefSerializer()
        days = serializers.IntegerField()
        targeted = serializers.IntegerField()
        held_out = serializers.IntegerField()
        treated = serializers.IntegerField()
        reached = serializers.IntegerField()
        coupons_issued = serializers.IntegerField()
        coupons_redeemed = serializers.IntegerField()
        redeemed_members = serializers.IntegerField()
        treated_group = EffectGroupSerializer()
        control_group = EffectGroupSerializer()
        uplift_per_member = _money(help_text=_("Mean revenue per treated member minus per control member."))
        uplift_standard_error = _money()
        uplift_ci_low = _money(help_text=_("95% confidence interval (Welch, normal approximation)."))
        uplift_ci_high = _money()
        grant_cost = _money()
        coupon_face_value_in_grants = _money()
        redeemed_discount = _money()
        cost = _money()
        incremental_revenue = _money()
        roi = _rate(help_text=_("(incremental revenue − cost) / cost; 1.5 means 150%."))
        engagement = EngagementSerializer(help_text=_("The campaign's messages: delivered, opened, clicked."))

    @extend_schema(
        operation_id="staff_campaign_effect",
        tags=["staff"],
        summary="A campaign's effect (staff only)",
        parameters=[
            OpenApiParameter("days", int, description="Conversion window after the grant (days)."),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request, campaign_id: int, **_kwargs):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        report = campaign_effect(campaign=campaign, days=params.validated_data["days"])
        if request.accepted_renderer.format == "csv":
            return csv_response(campaign_effect_csv_rows(report), f"campaign-{campaign.pk}-effect.csv")
        return Response(self.OutputSerializer(report).data)


class SegmentReportApi(StaffReportApi):
    extra_error_statuses = (400, 404)

    class InputSerializer(serializers.Serializer):
        from_run = serializers.IntegerField(min_value=1)
        to_run = serializers.IntegerField(min_value=1)
        lapsed_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)

    class OutputSerializer(serializers.Serializer):
        from_run = RunRefSerializer()
        to_run = RunRefSerializer()
        lapsed_days = serializers.IntegerField()
        retention_30d_complete = serializers.BooleanField()
        segments = SegmentFiguresSerializer(many=True)
        matrix = serializers.ListField(
            child=serializers.DictField(), help_text=_("Cells {from, to, count}: segment slugs at the two runs.")
        )

    @extend_schema(
        operation_id="staff_segment_report",
        tags=["staff"],
        summary="Segments between two runs (staff only)",
        parameters=[
            OpenApiParameter("from_run", int, required=True),
            OpenApiParameter("to_run", int, required=True),
            OpenApiParameter("lapsed_days", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request, **_kwargs):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        from_run, to_run = succeeded_run_pair(from_run_id=data["from_run"], to_run_id=data["to_run"])
        report = segment_report(from_run=from_run, to_run=to_run, lapsed_days=data.get("lapsed_days"))
        if request.accepted_renderer.format == "csv":
            return csv_response(segment_report_csv_rows(report), f"segments-{from_run.pk}-{to_run.pk}.csv")
        return Response(self.OutputSerializer(report).data)
