"""Campaign endpoints under ``/api/v1/`` (included by ``config.urls`` next to ``members.urls``).

- the member's coupons, offers and points multipliers, starting a top-up (with an offer or not),
  and redeeming a coupon at the till;
- the points catalogue: the member's rewards and redemptions, and redeeming and collecting at the till;
- the till's member lookup and top-up (``members.apis.pos``'s views, with top-up offers);
- ``campaigns/...``: effect reports for dashboards (staff only);
- ``messages/...``: the message providers' callbacks — WeChat's send results, SMS delivery receipts
  (``campaigns.apis.engagement``; the tracked links' ``/t/<token>`` is in ``config.urls``).
"""

from django.urls import path

from campaigns.apis import coupons, effect, engagement, offers, rewards, stamps

app_name = "campaigns-api"

urlpatterns = [
    # the member's own
    path("me/coupons", coupons.MemberCouponListApi.as_view(), name="me-coupons"),
    path("me/offers", offers.MemberOfferListApi.as_view(), name="me-offers"),
    path("me/points/multipliers", offers.MemberPointsMultiplierListApi.as_view(), name="me-points-multipliers"),
    path("me/stamp-cards", stamps.MemberStampCardListApi.as_view(), name="me-stamp-cards"),
    path("me/top-ups", offers.TopUpIntentCreateApi.as_view(), name="me-top-ups"),
    path("me/rewards", rewards.MemberRewardListApi.as_view(), name="me-rewards"),
    path("me/rewards/<int:reward_id>/redeem", rewards.MemberRewardRedeemApi.as_view(), name="me-reward-redeem"),
    path("me/messages/<int:message_id>/opened", engagement.MemberMessageOpenedApi.as_view(), name="me-message-opened"),
    path("me/reward-redemptions", rewards.MemberRewardRedemptionListApi.as_view(), name="me-reward-redemptions"),
    # POS: redeeming coupons; the member lookup and the top-up of ``members.apis.pos``, with top-up offers
    path("pos/coupons/redeem", coupons.PosCouponRedeemApi.as_view(), name="pos-coupons-redeem"),
    path("pos/members/lookup", offers.PosMemberLookupApi.as_view(), name="pos-members-lookup"),
    path("pos/wallet/top-up", offers.PosWalletTopUpApi.as_view(), name="pos-wallet-top-up"),
    # POS: the points catalogue
    path("pos/rewards", rewards.PosRewardListApi.as_view(), name="pos-rewards"),
    path("pos/rewards/redeem", rewards.PosRewardRedeemApi.as_view(), name="pos-rewards-redeem"),
    path("pos/rewards/collect", rewards.PosRewardCollectApi.as_view(), name="pos-rewards-collect"),
    # staff reports
    path("campaigns/<int:campaign_id>/effect", effect.CampaignEffectApi.as_view(), name="campaign-effect"),
    path("campaigns/segment-report", effect.SegmentReportApi.as_view(), name="segment-report"),
    # message providers' callbacks
    path("messages/wechat/push", engagement.WeChatMessagePushApi.as_view(), name="messages-wechat-push"),
    path("messages/sms/receipts", engagement.SmsReceiptApi.as_view(), name="messages-sms-receipts"),
]
