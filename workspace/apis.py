"""The operators' reports of issue #19 as an API for dashboards, on the pattern of the effect
reports (``campaigns.apis.effect``): staff signed in to the admin (session), who see every store's
figures as the dashboard's users do (``members.view_all_stores`` and ``segmentation.view_rfmrun``);
throttled per user (``staff_report``); ``?format=csv`` answers the page's CSV.

- ``GET /api/v1/reports/activity?days=30&weeks=12`` — ``workspace.activity.activity_report``
- ``GET /api/v1/reports/segment-growth[?from_run=<id>&to_run=<id>]`` — ``workspace.reports.growth_report``
  (without runs: the current run and the one before)
- ``GET /api/v1/reports/referrals[?start=YYYY-MM-DD&end=YYYY-MM-DD]`` — ``workspace.reports.referral_report``

Amounts and rates travel as decimal strings (rates as fractions: ``0.5000`` is 50%).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.response import Response

from campaigns.apis.effect import RunRefSerializer, StaffReportApi, csv_response, succeeded_run_pair
from segmentation.models import Segment
from workspace import activity, reports
from workspace.admin.reports import MAX_REFERRAL_DAYS, activity_csv_rows

REPORT_PERMISSIONS = ("members.view_all_stores", "segmentation.view_rfmrun")


class SeesEveryStore(BasePermission):
    """The reports count every store's members: for the dashboard's users only."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.has_perms(REPORT_PERMISSIONS))


class OperatorReportApi(StaffReportApi):
    permission_classes = [IsAdminUser, SeesEveryStore]


def _money(**kwargs):
    return serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True, **kwargs)


def _rate(**kwargs):
    return serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True, **kwargs)


# --- activity ---------------------------------------------------------------------------------


class SegmentCountSerializer(serializers.Serializer):
    segment = serializers.CharField(help_text=_("The segment's slug; empty: no segment."))
    active = serializers.IntegerField()


class ActivityBucketSerializer(serializers.Serializer):
    start = serializers.DateField(help_text=_("The day, or the Monday of the week."))
    active = serializers.IntegerField()
    by_segment = SegmentCountSerializer(many=True)


class RetentionSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("The registration day, a segment's slug (empty: none) or “total”."))
    new_members = serializers.IntegerField()
    next_day = _rate()
    within_7_days = _rate()
    within_30_days = _rate()


class ActivityReportApi(OperatorReportApi):
    class InputSerializer(serializers.Serializer):
        days = serializers.IntegerField(min_value=7, max_value=activity.MAX_DAYS, default=activity.DEFAULT_DAYS)
        weeks = serializers.IntegerField(min_value=4, max_value=activity.MAX_WEEKS, default=activity.DEFAULT_WEEKS)

    class OutputSerializer(serializers.Serializer):
        today = serializers.DateField()
        days = serializers.IntegerField()
        weeks = serializers.IntegerField()
        rolled_up_at = serializers.DateTimeField(allow_null=True, help_text=_("When the nightly rollup last ran."))
        daily = ActivityBucketSerializer(many=True)
        weekly = ActivityBucketSerializer(many=True)
        retention_by_day = RetentionSerializer(many=True)
        retention_by_segment = RetentionSerializer(many=True)
        retention = RetentionSerializer()

    @extend_schema(
        operation_id="staff_activity_report",
        tags=["staff"],
        summary="Daily and weekly active members and new members' retention (staff only)",
        description=(
            "Active: an order not refunded in full, or any interaction, that day (local time). Retention of "
            "the members registered on a day: active the next day, within 7 and within 30 days after it."
        ),
        parameters=[
            OpenApiParameter("days", int),
            OpenApiParameter("weeks", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request, **_kwargs):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        report = activity.activity_report(**params.validated_data)
        if request.accepted_renderer.format == "csv":
            return csv_response(activity_csv_rows(report), f"activity-{report['today']}.csv")
        kept = report["retention"]
        ids = {key for bucket in report["daily"] + report["weekly"] for key in bucket.by_segment} | set(
            kept["segments"]
        )
        slugs = dict(Segment.objects.filter(pk__in=[i for i in ids if i is not None]).values_list("pk", "slug"))

        def slug(segment_id):
            return slugs.get(segment_id, "") if segment_id is not None else ""

        def buckets(items):
            return [
                {
                    "start": bucket.start,
                    "active": bucket.active,
                    "by_segment": [{"segment": slug(key), "active": n} for key, n in bucket.by_segment.items()],
                }
                for bucket in items
            ]

        def cohort(item, key):
            rates = [item.rate(n) for n in activity.RETENTION_DAYS]
            return {
                "key": key,
                "new_members": item.new,
                "next_day": rates[0],
                "within_7_days": rates[1],
                "within_30_days": rates[2],
            }

        data = {
            "today": report["today"],
            "days": report["days"],
            "weeks": report["weeks"],
            "rolled_up_at": report["rolled_up_at"],
            "daily": buckets(report["daily"]),
            "weekly": buckets(report["weekly"]),
            "retention_by_day": [cohort(item, str(item.key)) for item in kept["days"]],
            "retention_by_segment": [cohort(item, slug(key)) for key, item in kept["segments"].items()],
            "retention": cohort(kept["total"], "total"),
        }
        return Response(self.OutputSerializer(data).data)


# --- growth -----------------------------------------------------------------------------------


class SegmentGrowthSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    size_a = serializers.IntegerField()
    size_b = serializers.IntegerField()
    size_change = serializers.IntegerField()
    size_growth = _rate(help_text=_("(B − A) / A; null when A is 0."))
    spend_a = _money()
    spend_b = _money()
    spend_change = _money()
    spend_growth = _rate()
    frequency_a = _money(help_text=_("Average orders per member in the run's window."))
    frequency_b = _money()
    frequency_change = _money()
    frequency_growth = _rate()
    new = serializers.BooleanField(help_text=_("Empty in the first run, not in the second."))


class SegmentGrowthApi(OperatorReportApi):
    extra_error_statuses = (400, 404)

    class InputSerializer(serializers.Serializer):
        from_run = serializers.IntegerField(min_value=1, required=False)
        to_run = serializers.IntegerField(min_value=1, required=False)

        def validate(self, attrs):
            if ("from_run" in attrs) != ("to_run" in attrs):
                missing = "to_run" if "from_run" in attrs else "from_run"
                raise serializers.ValidationError({missing: [_("Give both runs, or neither.")]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        from_run = RunRefSerializer()
        to_run = RunRefSerializer()
        segments = SegmentGrowthSerializer(many=True)

    @extend_schema(
        operation_id="staff_segment_growth_report",
        tags=["staff"],
        summary="Segment size, spend and frequency growth between two runs (staff only)",
        parameters=[
            OpenApiParameter("from_run", int),
            OpenApiParameter("to_run", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request, **_kwargs):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        if "from_run" in data:
            from_run, to_run = succeeded_run_pair(from_run_id=data["from_run"], to_run_id=data["to_run"])
        else:
            from_run, to_run = reports.default_runs()
            if from_run is None:
                raise NotFound(_("There are not two successful runs of the current scheme yet."))
        report = reports.growth_report(from_run=from_run, to_run=to_run)
        if request.accepted_renderer.format == "csv":
            return csv_response(reports.growth_csv_rows(report), f"growth-{from_run.pk}-{to_run.pk}.csv")
        return Response(self.OutputSerializer(report).data)


# --- referrals --------------------------------------------------------------------------------


class ReferralFiguresSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text=_("The referrer's current segment; empty: no segment."))
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    referrers = serializers.IntegerField()
    referred = serializers.IntegerField(help_text=_("New members registered with a referral in the period."))
    buyers = serializers.IntegerField()
    conversion_rate = _rate()
    first_order_value = _money()
    average_first_order = _money()
    spend = _money()
    orders = serializers.IntegerField()
    spend_per_referred = _money()


class ReferralReportApi(OperatorReportApi):
    class InputSerializer(serializers.Serializer):
        start = serializers.DateField(required=False)
        end = serializers.DateField(required=False)

        def validate(self, attrs):
            start, end = reports.referral_period(start=attrs.get("start"), end=attrs.get("end"))
            if end < start:
                raise serializers.ValidationError({"end": [_("The period must end on or after its first day.")]})
            if (end - start).days >= MAX_REFERRAL_DAYS:
                raise serializers.ValidationError({"start": [_("Choose a period of at most three years.")]})
            return {"start": start, "end": end}

    class OutputSerializer(serializers.Serializer):
        start = serializers.DateField()
        end = serializers.DateField()
        segments = ReferralFiguresSerializer(many=True)

    @extend_schema(
        operation_id="staff_referral_report",
        tags=["staff"],
        summary="New members by referral and their value, by the referrer's segment (staff only)",
        parameters=[
            OpenApiParameter("start", str, description="First day (YYYY-MM-DD); default: 29 days before the end."),
            OpenApiParameter("end", str, description="Last day, included; default: today."),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request, **_kwargs):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        report = reports.referral_report(**params.validated_data)
        if request.accepted_renderer.format == "csv":
            return csv_response(reports.referral_csv_rows(report), f"referrals-{report['start']}-{report['end']}.csv")
        return Response(self.OutputSerializer(report).data)
