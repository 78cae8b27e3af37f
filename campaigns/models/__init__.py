"""The campaigns app's data, one module per part; import from ``campaigns.models``."""

from campaigns.models.campaigns import *  # noqa: F403
from campaigns.models.coupons import *  # noqa: F403
from campaigns.models.followups import *  # noqa: F403
from campaigns.models.offers import *  # noqa: F403
from campaigns.models.outbox import *  # noqa: F403
from campaigns.models.rewards import *  # noqa: F403
from campaigns.models.stamps import *  # noqa: F403
from campaigns.models.triggers import *  # noqa: F403
