"""The members app's data, one module per part of the domain; import from ``members.models``."""

from members.models.api import *  # noqa: F403
from members.models.core import MONEY, Member, Order, Refund, Store, TimeStampedModel
from members.models.imports import *  # noqa: F403
from members.models.interactions import *  # noqa: F403
from members.models.points import *  # noqa: F403
from members.models.products import *  # noqa: F403
from members.models.referrals import *  # noqa: F403
from members.models.staff import *  # noqa: F403
from members.models.tags import *  # noqa: F403
from members.models.tiers import *  # noqa: F403
from members.models.wallet import *  # noqa: F403

__all__ = ["MONEY", "Member", "Order", "Refund", "Store", "TimeStampedModel"]
