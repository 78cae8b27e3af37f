"""Every row lock of the members app, in one place.

Locks are always taken in one order — member, then wallet, then order; by primary key within a
kind — so that two requests never deadlock. Call these inside ``transaction.atomic``.
"""

from members.models import Member, Order


def member_lock(*, member_id: int) -> Member:
    return Member.objects.select_for_update().get(pk=member_id)


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)
