"""``/api/v1/campaigns/``: effect reports for dashboards (staff only). Included by ``config.urls``."""

from django.urls import path

from campaigns import apis

app_name = "campaigns-api"

urlpatterns = [
    path("<int:campaign_id>/effect", apis.CampaignEffectApi.as_view(), name="campaign-effect"),
    path("segment-report", apis.SegmentReportApi.as_view(), name="segment-report"),
]
