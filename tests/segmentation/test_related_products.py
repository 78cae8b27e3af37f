"""Related products: co-purchases ranked by lift with a minimum support, computed set-based in the
nightly run; shown in the member 360 and named in a trigger's message (``related_products``)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from campaigns.models import OutboxMessage, Trigger
from campaigns.playbook import playbook_install
from campaigns.services.triggers import trigger_fire, triggers_schedule_for_order
from members.services.orders import refund_record
from segmentation.models import RelatedProduct
from segmentation.product_selectors import member_recommended_products, order_related_product_names
from segmentation.services import product_preferences_recompute
from tests.factories import MemberFactory, OrderFactory, OrderLineFactory, ProductFactory
from tests.workspace.builders import role_user, two_stores

pytestmark = pytest.mark.django_db


def buy(member, *products, days_ago=1):
    """An order of ``member`` with one ¥10 line per product, paid ``days_ago`` days ago."""
    order = OrderFactory(
        member=member,
        amount=Decimal("10.00") * len(products),
        paid_at=timezone.now() - dt.timedelta(days=days_ago),
    )
    for product in products:
        OrderLineFactory(order=order, product=product, amount=Decimal("10.00"))
    return order


def related(product) -> list[tuple[int, str, int]]:
    return [
        (row.rank, row.related.sku, row.support)
        for row in RelatedProduct.objects.filter(product=product).select_related("related").order_by("rank")
    ]


@pytest.fixture
def shop():
    """Products: a best-seller (WATER) everyone buys, tea and cake bought together, coffee and bread."""
    return {
        sku: ProductFactory(sku=sku, name=name, category=category)
        for sku, name, category in (
            ("WATER", "矿泉水", "饮料"),
            ("TEA", "杨枝甘露", "果茶"),
            ("CAKE", "芝士蛋糕", "蛋糕"),
            ("COFFEE", "拿铁", "咖啡"),
            ("BREAD", "可颂", "面包"),
        )
    }


@pytest.fixture
def baskets(shop):
    """Ten members' purchases over the year:

    - 3 buy tea, cake and water (tea ~ cake: support 3);
    - 3 buy coffee, bread and water;
    - 4 buy water alone... and one of them also tea once (tea ~ water: support 4, but water is everywhere);
    - 1 buys tea and bread (support 1: below the minimum).
    """
    members = [MemberFactory() for _index in range(11)]
    for member in members[:3]:
        buy(member, shop["TEA"], shop["WATER"])
        buy(member, shop["CAKE"], days_ago=100)
    for member in members[3:6]:
        buy(member, shop["COFFEE"], shop["BREAD"], shop["WATER"])
    for member in members[6:10]:
        buy(member, shop["WATER"])
    buy(members[6], shop["TEA"], days_ago=200)
    buy(members[10], shop["TEA"], shop["BREAD"])
    return members


def test_related_products_are_ranked_by_lift_with_a_minimum_support(shop, baskets):
    # when
    product_preferences_recompute(min_support=2)
    # then: tea's buyers (5) bought cake (3 of them; 3 buyers in all: lift 11·3/(5·3) = 2.2) far more
    # than chance, water (4; 10 buyers: lift 11·4/(5·10) = 0.88) about as much as anyone; bread once only
    assert related(shop["TEA"]) == [(1, "CAKE", 3), (2, "WATER", 4)]
    assert related(shop["COFFEE"]) == [(1, "BREAD", 3), (2, "WATER", 3)]
    assert related(shop["BREAD"])[0][1] == "COFFEE"
    lift = RelatedProduct.objects.get(product=shop["TEA"], related=shop["CAKE"]).lift
    assert lift == pytest.approx(11 * 3 / (5 * 3))


def test_a_higher_minimum_support_and_top_k_cut_the_list(shop, baskets):
    product_preferences_recompute(min_support=4)
    assert related(shop["TEA"]) == [(1, "WATER", 4)]
    assert related(shop["CAKE"]) == []
    product_preferences_recompute(min_support=2, top=1)
    assert related(shop["TEA"]) == [(1, "CAKE", 3)]


def test_refunded_lines_and_orders_and_old_orders_are_left_out(shop):
    # given: two members buy tea with cake, but one of those orders is refunded in full, another's
    # is older than a year
    first, second, third = MemberFactory(), MemberFactory(), MemberFactory()
    buy(first, shop["TEA"], shop["CAKE"])
    refund_record(external_id="R-1", order=buy(second, shop["TEA"], shop["CAKE"]), amount="20.00")
    buy(third, shop["TEA"], shop["CAKE"], days_ago=400)
    # when
    product_preferences_recompute(min_support=2)
    # then: one member only: below the support
    assert related(shop["TEA"]) == []
    product_preferences_recompute(min_support=1)
    assert related(shop["TEA"]) == [(1, "CAKE", 1)]


def test_recommendations_are_related_to_recent_purchases_and_not_already_bought(shop, baskets):
    product_preferences_recompute(min_support=2)
    # given: a member who bought tea this week, and water earlier in the year
    member = MemberFactory()
    buy(member, shop["TEA"])
    buy(member, shop["WATER"], days_ago=150)
    # then: cake is recommended (because of tea); water is not, they buy it already
    recommended = member_recommended_products(member_id=member.pk)
    assert [(r.sku, r.because) for r in recommended] == [("CAKE", "杨枝甘露")]
    assert order_related_product_names(member_id=member.pk) == "芝士蛋糕"


def test_the_360_shows_what_to_recommend_in_chinese(client, shop, baskets):
    # given: a member who bought coffee yesterday, and last night's run
    stores = two_stores()
    member = stores.our_member
    buy(member, shop["COFFEE"])
    product_preferences_recompute(min_support=2)
    client.force_login(role_user("staff", stores.ours))
    # when
    with translation.override("zh-hans"):
        page = client.get(
            reverse("admin:members_member_change", args=[member.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True
        ).content.decode()
    # then: bread (then water), each with why
    section = page[page.index('id="member-recommended-products"') :]
    section = section[: section.index("</ul>")]
    assert "可以推荐" in section
    assert section.index("可颂") < section.index("矿泉水")
    assert "与 拿铁 一起购买" in section
    assert "最喜欢的品类" in page


def test_a_trigger_message_names_the_products_related_to_the_order(shop, baskets, segments, place):
    # given: the playbook's trigger for champions, switched on; a champion buys coffee
    product_preferences_recompute(min_support=2)
    playbook_install()
    trigger = Trigger.objects.get(kind=Trigger.Kind.AFTER_ORDER, segment=segments["champions"])
    assert (trigger.delay_days, trigger.is_active, trigger.name_en != "") == (3, False, True)
    Trigger.objects.filter(pk=trigger.pk).update(is_active=True)
    champion = MemberFactory()
    place(champion, "champions")
    order = buy(champion, shop["COFFEE"], days_ago=0)
    now = timezone.now()
    # when: three days later the firing comes due
    (firing,) = triggers_schedule_for_order(order_id=order.pk, now=now)
    fired = trigger_fire(
        trigger=firing.trigger, member_id=champion.pk, cause_key=firing.cause_key, now=now + dt.timedelta(days=3)
    )
    # then: the message names the products bought with coffee
    message = OutboxMessage.objects.get(pk=fired.message_id)
    assert message.template == "champions_related_products"
    assert message.payload["related_products"] == "可颂、矿泉水"


def test_a_member_with_nothing_related_gets_an_empty_placeholder(shop, baskets):
    product_preferences_recompute(min_support=2)
    member = MemberFactory()
    order = buy(member, ProductFactory(name="冷门商品"), days_ago=0)
    assert order_related_product_names(member_id=member.pk, order_id=order.pk) == ""
