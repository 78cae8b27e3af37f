"""``/api/v1/``: the mini-program's and the POS systems' API (included by ``config.urls``).

Coupons, offers and points multipliers live in ``campaigns.urls`` under the same prefix — and so do
the POS member lookup and top-up, served there with the member's top-up offers.
"""

from django.conf import settings
from django.urls import path

from members.apis import auth, events, me, payments, pos

app_name = "api-v1"

urlpatterns = [
    # member authentication
    path("auth/wechat-login", auth.WeChatLoginApi.as_view(), name="auth-wechat-login"),
    path("auth/wechat-register", auth.WeChatRegisterApi.as_view(), name="auth-wechat-register"),
    path("auth/dev-login", auth.DevLoginApi.as_view(), name="auth-dev-login"),
    path("auth/refresh", auth.TokenRefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", auth.LogoutApi.as_view(), name="auth-logout"),
    # the member's own data
    path("me", me.MemberProfileApi.as_view(), name="me-profile"),
    path("me/qr-code", me.MemberQrCodeApi.as_view(), name="me-qr-code"),
    path("me/mobile", me.MemberMobileBindApi.as_view(), name="me-mobile"),
    path("me/orders", me.MemberOrderListApi.as_view(), name="me-orders"),
    path("me/orders/<int:order_id>", me.MemberOrderDetailApi.as_view(), name="me-order"),
    path("me/points/entries", me.MemberPointsEntryListApi.as_view(), name="me-points-entries"),
    path("me/wallet/entries", me.MemberWalletEntryListApi.as_view(), name="me-wallet-entries"),
    path(
        "me/wallet/restricted-bonuses",
        me.MemberRestrictedBonusListApi.as_view(),
        name="me-wallet-restricted-bonuses",
    ),
    path("me/events", events.MemberEventsApi.as_view(), name="me-events"),
    path("me/referrals", me.MemberReferralListApi.as_view(), name="me-referrals"),
    path("me/data-export", me.MemberDataExportApi.as_view(), name="me-data-export"),
    path("me/erasure", me.MemberErasureApi.as_view(), name="me-erasure"),
    path("me/top-ups/<str:out_trade_no>", payments.TopUpIntentDetailApi.as_view(), name="me-top-up"),
    # payment callbacks
    path("payments/wechat/notify", payments.WeChatPayNotifyApi.as_view(), name="payments-wechat-notify"),
    # POS
    path("pos/orders", pos.PosOrderCreateApi.as_view(), name="pos-orders"),
    path("pos/orders/<str:external_id>", pos.PosOrderDetailApi.as_view(), name="pos-order"),
    path("pos/refunds", pos.PosRefundCreateApi.as_view(), name="pos-refunds"),
    # pos/members/lookup and pos/wallet/top-up: in campaigns.urls, with the member's top-up offers
    path("pos/wallet/spend", pos.PosWalletSpendApi.as_view(), name="pos-wallet-spend"),
    path("pos/points/redeem", pos.PosPointsRedeemApi.as_view(), name="pos-points-redeem"),
    path("pos/events", events.PosEventsApi.as_view(), name="pos-events"),
]

if settings.HUIYUAN_BENCH_FLOOR:
    from members.apis.bench import BenchFloorApi

    urlpatterns.append(path("bench/floor", BenchFloorApi.as_view(), name="bench-floor"))
