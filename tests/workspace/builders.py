"""Users in the shipped roles (``members.roles.ROLES``) assigned to stores, and two stores with a
member each whose mobile numbers end alike (手机尾号 ``2213``). The fixtures of ``conftest.py``
and the browser tests use them."""

import datetime as dt
from typing import NamedTuple

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from members.models import Member, Store, StoreStaff
from members.roles import ROLE_BY_KEY, roles_install
from segmentation.services import segment_recompute
from tests.factories import MemberFactory, OrderFactory, StoreFactory

PASSWORD = "pw-workspace-1"


def role_user(role: str, *stores: Store, username: str | None = None):
    """A user in the role's group (``operator``, ``manager``, ``staff``, ``analyst``), assigned to
    the stores given; their password is ``PASSWORD``."""
    name = ROLE_BY_KEY[role].group
    if not Group.objects.filter(name=name).exists():  # a transactional test flushed the migration's groups
        roles_install(django_apps)
    user = get_user_model().objects.create_user(username or role, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=name))
    StoreStaff.objects.bulk_create([StoreStaff(user=user, store=store) for store in stores])
    return user


class Stores(NamedTuple):
    ours: Store
    theirs: Store
    our_member: Member  # home store: ours, mobile …2213
    their_member: Member  # home store: theirs, mobile …2213


def two_stores() -> Stores:
    ours = StoreFactory(code="SH01", name="静安店")
    theirs = StoreFactory(code="BJ01", name="朝阳店")
    return Stores(
        ours=ours,
        theirs=theirs,
        our_member=MemberFactory(mobile="13800002213", name="王芳", home_store=ours),
        their_member=MemberFactory(mobile="13900002213", name="王强", home_store=theirs),
    )


def segment_with_orders(member: Member, *, days_ago=(45, 60, 90, 120), amount="205.00") -> None:
    """Orders for ``member`` (by default R 45 days, F 4, M ¥820: 重要保持用户 in the default
    scheme) and a recompute, so that their segment has an explanation."""
    now = timezone.now()
    for days in days_ago:
        OrderFactory(member=member, store=member.home_store, paid_at=now - dt.timedelta(days=days), amount=amount)
    segment_recompute(as_of=timezone.localdate())
