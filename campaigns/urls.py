"""Campaign endpoints under ``/api/v1/`` (included by ``config.urls`` next to ``members.urls``).

- the member's coupons, offers and points multipliers, starting a top-up (with an offer or not),
  and redeeming a coupon at the till;
- ``campaigns/...``: effect reports for dashboards (staff only).
"""

from django.urls import path

from campaigns.apis import coupons, effect, offers

app_name = "campaigns-api"

urlpatterns = [
    # the member's own
    path("me/coupons", coupons.MemberCouponListApi.as_view(), name="me-coupons"),
    path("me/offers", offers.MemberOfferListApi.as_view(), name="me-offers"),
    path("me/points/multipliers", offers.MemberPointsMultiplierListApi.as_view(), name="me-points-multipliers"),
    path("me/top-ups", offers.TopUpIntentCreateApi.as_view(), name="me-top-ups"),
    # POS
    path("pos/coupons/redeem", coupons.PosCouponRedeemApi.as_view(), name="pos-coupons-redeem"),
    # staff reports
    path("campaigns/<int:campaign_id>/effect", effect.CampaignEffectApi.as_view(), name="campaign-effect"),
    path("campaigns/segment-report", effect.SegmentReportApi.as_view(), name="segment-report"),
]
