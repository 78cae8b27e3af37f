"""factory_boy factories for the domain."""

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from members.models import Member, Order, Refund, Store


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"S{n:03d}")
    name = factory.Sequence(lambda n: f"门店{n}")
    city = "上海"


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    mobile = factory.Sequence(lambda n: f"139{n:08d}")
    name = factory.Sequence(lambda n: f"会员{n}")
    registered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=400))
    home_store = factory.SubFactory(StoreFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"ORD-{n:08d}")
    member = factory.SubFactory(MemberFactory)
    store = factory.SelfAttribute("member.home_store")
    paid_at = factory.LazyFunction(timezone.now)
    amount = Decimal("38.00")


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    external_id = factory.Sequence(lambda n: f"REF-{n:08d}")
    order = factory.SubFactory(OrderFactory)
    amount = Decimal("1.00")
    refunded_at = factory.LazyFunction(timezone.now)
