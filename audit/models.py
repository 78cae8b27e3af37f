"""The audit trail: who changed what, when, and what it was before and after (django-pghistory).

PostgreSQL triggers write an event row for every change of the audited tables, whatever made it —
an admin form, an admin action, a service, a bulk ``update()`` or raw SQL — so nothing escapes
it and no code of the audited apps knows about it. ``audit`` is the highest layer: it names the
models of ``members``, ``segmentation`` and ``campaigns``, which never import it.

Each audited model is tracked through a proxy model here (the triggers' migrations then live in
this app, not in the audited ones), with its own event table ``audit_<name>event``:

- settings operators edit — tiers and their rules, the loyalty program, segment schemes, segments
  and rules, campaigns and their benefits, top-up offers, coupon templates, triggers, referral
  reward rules, store API keys, products (their categories and tags decide offers), points rewards
  and their segment and tier prices: ``created``,
  ``changed`` (only when a tracked field changes) and
  ``deleted``, each with the row as it was after (before, for a deletion);
- the money and points ledgers are append-only already: of them, the staff adjustments
  (``adjusted``) and the stored value staff move by hand (``entered by staff``: the admin's top-ups
  and top-up refunds), whose actor the entry also names;
- roles: a user added to or removed from a group (``role added`` / ``role removed``), a user's
  staff, superuser and active flags, and a user's store assignments.

Counters that the system moves on its own (a campaign's spend, a coupon template's issued count, an
API key's last use) and secrets (an API key's hash) are not recorded. Who acted comes from the
request (``audit.middleware``): the signed-in staff user of an admin or staff API write.

Event rows cannot be changed or deleted: pghistory's ``append_only`` triggers refuse ``UPDATE`` and
``DELETE`` on every event table, and the admin (``audit.admin``) only lists them.
"""

import pghistory
from django.apps import apps
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _
from pghistory.models import MiddlewareEvents

from campaigns.models import (
    Campaign,
    CampaignBenefit,
    CouponTemplate,
    ReferralRewardRule,
    Reward,
    RewardPrice,
    StampCard,
    TopUpOffer,
    Trigger,
)
from members.models import (
    LoyaltyProgram,
    MemberTag,
    PointsEntry,
    Product,
    StoreApiKey,
    StoreStaff,
    TagRule,
    Tier,
    TierRule,
    WalletEntry,
)
from segmentation.models import Scheme, Segment, SegmentRule

TIMESTAMPS = ["created_at", "updated_at"]  # the event has its own time


def changes():
    """Trackers of a settings row: created, changed (a tracked field differs), deleted. New objects
    each time: pghistory fills a tracker's condition with its model's fields."""
    return (
        pghistory.InsertEvent("created"),
        pghistory.UpdateEvent("changed"),
        pghistory.DeleteEvent("deleted"),
    )


def audited(model, *, exclude=(), fields=None, trackers=None, name: str, verbose_name=None):
    """Track ``model`` through a proxy of this app named ``Audited<name>``, into ``<name>Event``
    (named in the audit log's filter as ``verbose_name``, by default the model's)."""
    meta = type("Meta", (), {"proxy": True, "app_label": "audit", "default_permissions": ()})
    proxy = type(f"Audited{name}", (model,), {"__module__": __name__, "Meta": meta})
    options = {"fields": fields} if fields is not None else {"exclude": [*TIMESTAMPS, *exclude]}
    pghistory.track(
        *(trackers or changes()),
        **options,
        model_name=f"{name}Event",
        app_label="audit",
        append_only=True,
        meta={"verbose_name": verbose_name or model._meta.verbose_name},
    )(proxy)
    return proxy


# --- settings operators edit -----------------------------------------------------------------
AuditedTier = audited(Tier, name="Tier")
AuditedTierRule = audited(TierRule, name="TierRule")
AuditedLoyaltyProgram = audited(LoyaltyProgram, name="LoyaltyProgram")
AuditedScheme = audited(Scheme, name="Scheme")
AuditedSegment = audited(Segment, name="Segment")
AuditedSegmentRule = audited(SegmentRule, name="SegmentRule")
AuditedCampaign = audited(Campaign, exclude=["spent_money", "spent_count"], name="Campaign")
AuditedCampaignBenefit = audited(CampaignBenefit, name="CampaignBenefit")
AuditedTopUpOffer = audited(TopUpOffer, name="TopUpOffer")
AuditedCouponTemplate = audited(CouponTemplate, exclude=["issued_count"], name="CouponTemplate")
AuditedTrigger = audited(Trigger, name="Trigger")
AuditedReferralRewardRule = audited(ReferralRewardRule, name="ReferralRewardRule")
AuditedReward = audited(Reward, exclude=["redeemed_count"], name="Reward")  # the count moves on its own
AuditedRewardPrice = audited(RewardPrice, name="RewardPrice")
AuditedStampCard = audited(StampCard, name="StampCard")
# who tagged or untagged a member, when; the nightly run's rule tags are left out (their rule is in)
AuditedMemberTag = audited(
    MemberTag,
    name="MemberTag",
    trackers=[
        pghistory.InsertEvent("created", condition=pghistory.Q(new__rule__isnull=True)),
        pghistory.UpdateEvent("changed"),
        pghistory.DeleteEvent("deleted", condition=pghistory.Q(old__rule__isnull=True)),
    ],
)
AuditedTagRule = audited(TagRule, exclude=["member_count", "computed_at"], name="TagRule")
AuditedProduct = audited(Product, name="Product")  # prices live on lines; names, categories and tags here
AuditedStoreApiKey = audited(StoreApiKey, exclude=["secret_hash", "last_used_at"], name="StoreApiKey")

# --- staff adjustments of the ledgers (append-only: inserts only) ------------------------------
AuditedPointsEntry = audited(
    PointsEntry,
    exclude=["idempotency_key"],
    trackers=[pghistory.InsertEvent("adjusted", condition=pghistory.Q(new__kind=PointsEntry.Kind.ADJUST))],
    name="PointsAdjustment",
    verbose_name=_("points adjustment"),
)
AuditedWalletEntry = audited(
    WalletEntry,
    exclude=["idempotency_key", "request_fingerprint"],
    trackers=[
        pghistory.InsertEvent("adjusted", condition=pghistory.Q(new__kind=WalletEntry.Kind.ADJUSTMENT)),
        # money a staff member moved by hand: the admin's top-ups (a free bonus included) and refunds
        pghistory.InsertEvent(
            "entered by staff",
            condition=pghistory.Q(new__actor_id__isnull=False) & ~pghistory.Q(new__kind=WalletEntry.Kind.ADJUSTMENT),
        ),
    ],
    name="WalletAdjustment",
    verbose_name=_("stored-value adjustment"),
)

# --- roles -------------------------------------------------------------------------------------
AuditedUserRole = audited(
    User.groups.through,
    fields=["user", "group"],
    trackers=[pghistory.InsertEvent("role added"), pghistory.DeleteEvent("role removed")],
    name="UserRole",
    verbose_name=_("role of a user"),
)
AuditedUser = audited(
    User,
    fields=["username", "is_active", "is_staff", "is_superuser"],
    name="StaffUser",
    verbose_name=_("staff account"),
)
AuditedStoreStaff = audited(
    StoreStaff, fields=["user", "store"], name="StoreAssignment", verbose_name=_("store assignment")
)


class AuditLogEntry(MiddlewareEvents):
    """One event of any audited table, as the audit log lists it (``pghistory``'s aggregate of the
    event tables: the row after, the changed fields before and after, the request's context)."""

    class Meta:
        proxy = True
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        default_permissions = ("view",)

    def __str__(self):
        model = apps.get_model(self.pgh_model)
        return f"{model._meta.verbose_name} #{self.pgh_obj_id}"
