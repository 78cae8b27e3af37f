"""Walk every operation of the generated OpenAPI schema as member A (and as store A's key) with B's
identifiers: everything of B answers 404 (or 403), nothing of B changes, lists hold only A's rows.
Staff-only operations (the campaign reports) refuse members, store keys and anonymous callers alike.

Every operation under ``/api/v1/`` must have a plan here: a new endpoint fails this test until
someone decides how it is scoped.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from campaigns.models import (
    Coupon,
    CouponTemplate,
    OutboxMessage,
    Reward,
    RewardRedemption,
    Stamp,
    StampCard,
    TopUpOffer,
)
from campaigns.services.coupons import coupon_grant
from campaigns.services.outbox import message_enqueue
from campaigns.services.rewards import reward_redeem
from members.models import (
    Interaction,
    Member,
    MemberPointsMultiplier,
    Order,
    PointsEntry,
    Referral,
    Refund,
    RestrictedBonus,
    Restriction,
    TopUpIntent,
    WalletEntry,
)
from members.services.points import points_grant
from members.services.qr_codes import member_qr_code
from members.services.tokens import member_tokens_issue
from members.services.top_ups import top_up_intent_create
from members.services.wallet import wallet_top_up
from tests.api.conftest import member_client, store_client
from tests.factories import MemberFactory, OrderFactory, RefundFactory

pytestmark = pytest.mark.django_db
WAKE_UP = Restriction(tags=("唤醒商品",))

# Operations that are not scoped to a member or a store, and why.
PUBLIC = {
    "auth_wechat_login": "exchanges a WeChat code; names no member",
    "auth_wechat_register": "needs a registration token signed by us",
    "auth_dev_login": "development only (HUIYUAN_DEV_LOGIN), off in production",
    "auth_refresh": "needs the refresh token itself",
    "payments_wechat_notify": "needs WeChat Pay's signature",
    "messages_wechat_push_check": "needs WeChat's signature of our push token",
    "messages_wechat_push": "needs WeChat's signature of our push token; names messages by WeChat's msgid",
    "messages_sms_receipts": "needs the SMS gateway's HMAC signature under our secret",
}

# Staff-only operations (Django staff users, by session or HTTP Basic): members and stores get 401/403.
STAFF_PREFIX = "staff_"
REFUSED = {401, 403}


def schema_operations() -> dict[str, tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {}
    for path, item in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            operations[operation["operationId"]] = (method.upper(), path)
    return operations


def staff_url(path: str) -> str:
    return path.replace("{campaign_id}", "1")


@pytest.fixture
def world(member_a, member_b, store_a, store_b, place):
    data = {}
    for_everyone = TopUpOffer.objects.create(name="储值 100 送 5", code="all-100-5", min_amount="100", bonus_amount="5")
    stamps_for_everyone = StampCard.objects.create(name="集点卡", slug="stamps-all", bonus_points=1)
    for side, member, store, segment in (("a", member_a, store_a, "champions"), ("b", member_b, store_b, "lost")):
        order = OrderFactory(external_id=f"O-{side}", member=member, store=store, amount=Decimal("50.00"))
        RefundFactory(order=order, external_id=f"R-{side}", amount=Decimal("5.00"))
        points_grant(member=member, points=100, kind="campaign_reward", reason="r", idempotency_key=f"p-{side}")
        wallet_top_up(member=member, amount_paid="100.00", idempotency_key=f"w-{side}")
        wallet_top_up(
            member=member, amount_paid="10.00", bonus="5.00", restriction=WAKE_UP, idempotency_key=f"wr-{side}"
        )
        Referral.objects.create(referrer=member, referee=MemberFactory(), code=member.referral_code)
        intent = top_up_intent_create(member=member, amount="10.00")
        # a coupon valid only at the member's home store, a segment and its offer, a points multiplier
        template = CouponTemplate.objects.create(name=f"¥5 {side}", slug=f"five-{side}", amount=Decimal("5.00"))
        template.stores.set([store])
        coupon = coupon_grant(template=template, member=member, source="walk", idempotency_key=f"c-{side}")
        place(member, segment)
        offer = TopUpOffer.objects.create(name=f"储值 {side}", code=f"offer-{side}", min_amount="50", bonus_amount="5")
        offer.segments.set([member.rfm.segment])
        stamp_card = StampCard.objects.create(name=f"集点卡 {side}", slug=f"stamps-{side}", bonus_points=1)
        stamp_card.segments.set([member.rfm.segment])
        Stamp.objects.create(card=stamp_card, member=member, order=order, paid_at=order.paid_at)
        MemberPointsMultiplier.objects.create(
            member=member,
            multiplier=Decimal("2.00"),
            starts_at=order.paid_at,
            ends_at=order.paid_at + dt.timedelta(days=400),
            idempotency_key=f"m-{side}",
        )
        data[side] = {
            "member": member,
            "store": store,
            "order": order,
            "intent": intent,
            "coupon": coupon,
            "offer": offer,
            "stamp_card": stamp_card,
            "refresh": member_tokens_issue(member_id=member.pk)["refresh"],
        }
    data["offer_for_everyone"] = for_everyone
    # the points catalogue: a reward for everyone that both redeemed, and one exclusive to B's segment
    everyone = Reward.objects.create(name="积分换券", slug="walk-everyone", coupon_template=template, points_price=10)
    for side in ("a", "b"):
        data[side]["redemption"] = reward_redeem(
            member=data[side]["member"], reward=everyone, idempotency_key=f"walk-{side}", channel="mini_program"
        )
    for_b = Reward.objects.create(name="专属", slug="walk-b", coupon_template=template, points_price=10)
    for_b.exclusive_segments.set([data["b"]["member"].rfm.segment])
    data["reward_for_b"] = for_b
    data["stamps_for_everyone"] = stamps_for_everyone
    return data


def fingerprint_of(member) -> tuple:
    """Everything of a member that a walk must not change."""
    member.refresh_from_db()
    return (
        member.mobile,
        member.openid,
        tuple(Order.objects.filter(member=member).values_list("id", "amount", "refunded_amount", "store_id")),
        tuple(Refund.objects.filter(order__member=member).values_list("id", "amount")),
        tuple(PointsEntry.objects.filter(member=member).values_list("id", "points")),
        tuple(WalletEntry.objects.filter(wallet__member=member).values_list("id", "amount")),
        tuple(TopUpIntent.objects.filter(member=member).values_list("id", "status")),
        tuple(Coupon.objects.filter(member=member).values_list("id", "status", "redemption_key")),
        tuple(Interaction.objects.filter(member=member).values_list("id", "event_id")),
        tuple(RewardRedemption.objects.filter(member=member).values_list("id", "status", "collected_at")),
    )


def call(client, method, path, body=None, **headers):
    return client.generic(
        method, path, data=None if body is None else json.dumps(body), content_type="application/json", **headers
    )


# --- the member walk ---------------------------------------------------------------------------------


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


def member_plans(world):
    a, b = world["a"], world["b"]
    ma, mb = a["member"], b["member"]

    def only_mine(model_filter):
        def check(response):
            assert response.status_code == 200, response.content
            ids = set(_ids(response))
            assert ids, "the list should show A's rows"
            assert ids <= set(model_filter(ma)), "a row of someone else"

        return check

    return {
        "me_profile": (lambda: ({}, None), lambda r: r.json()["id"] == ma.pk),
        "me_qr_code": (lambda: ({}, None), lambda r: r.json()["qr_code"].startswith(f"{ma.pk}:")),
        "me_mobile_bind": (lambda: ({}, {"mobile": mb.mobile}), lambda r: r.status_code == 409),
        "me_orders_list": (
            lambda: ({}, None),
            only_mine(lambda m: Order.objects.filter(member=m).values_list("id", flat=True)),
        ),
        "me_orders_retrieve": (lambda: ({"order_id": b["order"].pk}, None), 404),
        "me_points_entries_list": (
            lambda: ({}, None),
            only_mine(lambda m: PointsEntry.objects.filter(member=m).values_list("id", flat=True)),
        ),
        "me_wallet_restricted_bonuses_list": (
            lambda: ({}, None),
            only_mine(lambda m: RestrictedBonus.objects.filter(wallet__member=m).values_list("id", flat=True)),
        ),
        "me_wallet_entries_list": (
            lambda: ({}, None),
            only_mine(lambda m: WalletEntry.objects.filter(wallet__member=m).values_list("id", flat=True)),
        ),
        "me_referrals_list": (
            lambda: ({}, None),
            only_mine(lambda m: Referral.objects.filter(referrer=m).values_list("id", flat=True)),
        ),
        "me_coupons_list": (
            lambda: ({}, None),
            only_mine(lambda m: Coupon.objects.filter(member=m).values_list("id", flat=True)),
        ),
        # offers are not owned: A sees the offer of A's segment and the one for everyone, never B's
        "me_offers_list": (
            lambda: ({}, None),
            lambda r: set(_ids(r)) == {a["offer"].pk, world["offer_for_everyone"].pk},
        ),
        # stamp cards are not owned: A sees the card of A's segment (with A's stamp) and the one for everyone
        "me_stamp_cards": (
            lambda: ({}, None),
            lambda r: (
                {row["id"]: row["stamps"] for row in r.json()}
                == {a["stamp_card"].pk: 1, world["stamps_for_everyone"].pk: 0}
            ),
        ),
        "me_points_multipliers_list": (
            lambda: ({}, None),
            only_mine(lambda m: MemberPointsMultiplier.objects.filter(member=m).values_list("id", flat=True)),
        ),
        # events are always the token's member's: a member id in the body is refused
        "me_events_create": (
            lambda: ({}, {"events": [{"id": "w1", "kind": "share", "occurred_at": "2026-01-05T10:00:00+08:00"}]}),
            lambda r: r.status_code == 200 and Interaction.objects.filter(event_id="w1").get().member_id == ma.pk,
        ),
        # rewards are not owned: A never sees the one exclusive to B's segment, nor can redeem it
        "me_rewards_list": (
            lambda: ({}, None),
            lambda r: r.status_code == 200 and world["reward_for_b"].pk not in _ids(r) and _ids(r),
        ),
        "me_rewards_redeem": (lambda: ({"reward_id": world["reward_for_b"].pk}, None), 400),
        # B's message: not found for A, and not counted as opened
        "me_messages_opened": (
            lambda: (
                {"message_id": message_enqueue(member=mb, template="t", payload={}, dedupe_key="walk-b").pk},
                None,
            ),
            lambda r: r.status_code == 404 and not OutboxMessage.objects.filter(member=mb, open_count__gt=0).exists(),
        ),
        "me_reward_redemptions_list": (
            lambda: ({}, None),
            only_mine(lambda m: RewardRedemption.objects.filter(member=m).values_list("id", flat=True)),
        ),
        "me_top_ups_create": (
            lambda: ({}, {"amount": "1.00", "member": mb.pk}),
            lambda r: r.status_code == 400 and "member" in r.json()["fields"],
        ),
        "me_top_ups_retrieve": (lambda: ({"out_trade_no": b["intent"].out_trade_no}, None), 404),
        "me_data_export": (
            lambda: ({}, None),
            lambda r: json.loads(r.content)["member"]["id"] == ma.pk and mb.mobile not in r.content.decode(),
        ),
        # erasure takes no member: naming B is an unknown field, and nothing is erased
        "me_erasure": (
            lambda: ({}, {"confirm": False, "member": mb.pk}),
            lambda r: r.status_code == 400 and "member" in r.json()["fields"],
        ),
        "auth_logout": (lambda: ({}, {"refresh": b["refresh"]}), 403),
    }


def test_member_walk(world):
    operations = schema_operations()
    plans = member_plans(world)
    pos_operations = {op for op in operations if op.startswith("pos_")}
    staff_operations = {op for op in operations if op.startswith(STAFF_PREFIX)}
    assert staff_operations, "the staff reports are in the schema"
    assert set(operations) == set(plans) | set(PUBLIC) | pos_operations | staff_operations, "plan every operation"
    client = member_client(world["a"]["member"])
    before = fingerprint_of(world["b"]["member"])
    for operation_id, (method, path) in sorted(operations.items()):
        if operation_id in PUBLIC:
            continue
        if operation_id in staff_operations:
            # given a member's token, every staff operation refuses
            response = call(client, method, staff_url(path), None)
            assert response.status_code in REFUSED, (operation_id, response.status_code)
            continue
        if operation_id in pos_operations:
            # given a member's token, every POS operation refuses: it needs a store key
            response = call(client, method, path.replace("{external_id}", "O-b"), {})
            assert response.status_code == 401, operation_id
            continue
        params, body = plans[operation_id][0]()
        url = path.format(**params)
        response = call(client, method, url, body)
        expected = plans[operation_id][1]
        if isinstance(expected, int):
            assert response.status_code == expected, (operation_id, response.content)
        else:
            assert expected(response) is not False, (operation_id, response.content)
    assert fingerprint_of(world["b"]["member"]) == before


# --- the store walk ------------------------------------------------------------------------------------


def test_store_key_walk(world):
    operations = schema_operations()
    a, b = world["a"], world["b"]
    client = store_client(a["store"])
    qr_b = member_qr_code(b["member"].pk)
    before = fingerprint_of(b["member"])
    b_orders = set(Order.objects.filter(store=b["store"]).values_list("id", "amount", "refunded_amount", "member_id"))
    plans = {
        # an order names no store: the key's store is used, and a store in the body is refused
        "pos_orders_create": (
            {},
            {
                "external_id": "N-1",
                "mobile": b["member"].mobile,
                "paid_at": "2026-01-05T10:00:00+08:00",
                "amount": "1.00",
                "store": b["store"].code,
            },
            lambda r: r.status_code == 400 and "store" in r.json()["fields"],
        ),
        "pos_orders_retrieve": ({"external_id": "O-b"}, None, 404),
        "pos_refunds_create": ({}, {"external_id": "R-new", "order_external_id": "O-b", "amount": "1.00"}, 404),
        # members belong to the brand, not to a store: any store may look them up; spending needs their QR code
        "pos_members_lookup": ({}, {"mobile": b["member"].mobile}, lambda r: r.status_code == 200),
        # recording B's events needs B's QR code (B at the counter) and the events scope
        "pos_events_create": (
            {},
            {
                "qr_code": qr_b[:-2] + "xx",
                "events": [{"id": "w2", "kind": "check_in", "occurred_at": "2026-01-05T10:00:00+08:00"}],
            },
            lambda r: r.status_code in (400, 403),
        ),
        "pos_wallet_spend": ({}, {"mobile": b["member"].mobile, "amount": "1.00"}, lambda r: r.status_code == 400),
        "pos_points_redeem": (
            {},
            {"qr_code": qr_b[:-2] + "xx", "points": 1, "reason": "r"},
            lambda r: r.status_code == 400,
        ),
        "pos_wallet_top_up": (
            {},
            {"mobile": b["member"].mobile, "amount": "1.00", "store": "B001"},
            lambda r: r.status_code == 400 and "store" in r.json()["fields"],
        ),
        # the points catalogue needs the member's QR code: B's mobile or a forged code is refused
        "pos_rewards_list": ({}, None, lambda r: r.status_code == 400 and "qr_code" in r.json()["fields"]),
        "pos_rewards_redeem": (
            {},
            {"qr_code": qr_b[:-2] + "xx", "reward": world["reward_for_b"].pk},
            lambda r: r.status_code == 400 and "qr_code" in r.json()["fields"],
        ),
        "pos_rewards_collect": (
            {},
            {"qr_code": qr_b[:-2] + "xx", "redemption": b["redemption"].pk},
            lambda r: r.status_code == 400 and "qr_code" in r.json()["fields"],
        ),
        # B's coupon is valid only at store B: store A cannot redeem it, even for B
        "pos_coupons_redeem": (
            {},
            {"mobile": b["member"].mobile, "coupon": b["coupon"].code, "amount": "50.00"},
            lambda r: r.status_code == 400 and r.json()["fields"]["store"][0]["code"] == "wrong_store",
        ),
    }
    pos_operations = {op for op in operations if op.startswith("pos_")}
    assert pos_operations == set(plans), "plan every new POS operation"
    for operation_id, (method, path) in sorted(operations.items()):
        if operation_id in PUBLIC:
            continue
        if operation_id.startswith(STAFF_PREFIX):
            # given a store key, every staff operation refuses
            response = call(client, method, staff_url(path), None)
            assert response.status_code in REFUSED, (operation_id, response.status_code)
            continue
        if operation_id not in plans:
            # given a store key, every member operation refuses: it needs a member's token
            url = (
                path.replace("{order_id}", str(b["order"].pk))
                .replace("{out_trade_no}", b["intent"].out_trade_no)
                .replace("{reward_id}", str(world["reward_for_b"].pk))
                .replace("{message_id}", "1")
            )
            response = call(client, method, url, {})
            assert response.status_code == 401, operation_id
            continue
        params, body, expected = plans[operation_id]
        response = call(client, method, path.format(**params), body, HTTP_IDEMPOTENCY_KEY=f"walk-{operation_id}")
        if isinstance(expected, int):
            assert response.status_code == expected, (operation_id, response.content)
        else:
            assert expected(response) is not False, (operation_id, response.content)
    assert fingerprint_of(b["member"]) == before
    assert (
        set(Order.objects.filter(store=b["store"]).values_list("id", "amount", "refunded_amount", "member_id"))
        == b_orders
    )
    assert not Order.objects.filter(external_id="N-1").exists()


def _components_used(schema, node, seen: set[str]) -> set[str]:
    """The names of the components ``node`` refers to, directly or through other components."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _components_used(schema, schema["components"]["schemas"][name], seen)
        for value in node.values():
            _components_used(schema, value, seen)
    elif isinstance(node, list):
        for value in node:
            _components_used(schema, value, seen)
    return seen


def test_no_member_facing_schema_exposes_segments(world):
    # given: the schema; staff reports are about segments, so only what members and stores see counts
    schema = SchemaGenerator().get_schema(request=None, public=True)
    facing = [
        operation
        for path, item in schema["paths"].items()
        for operation in item.values()
        if path.startswith("/api/v1/") and not operation["operationId"].startswith(STAFF_PREFIX)
    ]
    # when
    text = str([facing, [schema["components"]["schemas"][name] for name in _components_used(schema, facing, set())]])
    # then
    assert "segment" not in text.lower()
    assert "rfm" not in text.lower()
    assert "segment" in str(schema["components"]["schemas"]).lower(), "the staff reports are still documented"


def test_anonymous_callers_are_refused_everywhere(world):
    client = APIClient()
    for operation_id, (method, path) in schema_operations().items():
        if operation_id in PUBLIC:
            continue
        url = (
            staff_url(path)
            .replace("{order_id}", "1")
            .replace("{out_trade_no}", "x")
            .replace("{external_id}", "x")
            .replace("{reward_id}", "1")
            .replace("{message_id}", "1")
        )
        expected = REFUSED if operation_id.startswith(STAFF_PREFIX) else {401}
        assert call(client, method, url, {}).status_code in expected, operation_id
    assert Member.objects.count() == 4
