"""The operators' report API (``workspace.apis``), under ``/api/v1/reports/``."""

from django.urls import path

from workspace.apis import ActivityReportApi, ReferralReportApi, SegmentGrowthApi

urlpatterns = [
    path("reports/activity", ActivityReportApi.as_view(), name="report-activity"),
    path("reports/segment-growth", SegmentGrowthApi.as_view(), name="report-segment-growth"),
    path("reports/referrals", ReferralReportApi.as_view(), name="report-referrals"),
]
