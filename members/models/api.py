"""What the REST API keeps: store API keys, top-up intents and replayable POS responses.

Writes go through ``members.services.api_keys``, ``members.services.top_ups`` and
``members.apis.idempotency``.
"""

from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models.core import MONEY, Member, Store, TimeStampedModel
from members.models.products import ProductRestricted
from members.models.wallet import WalletEntry

__all__ = ["ApiIdempotencyRecord", "ApiScope", "StoreApiKey", "TopUpIntent"]


class ApiScope(models.TextChoices):
    """What a store API key may do. A key carries one or more scopes."""

    ORDERS = "orders", _("Record orders and refunds")
    MEMBERS_READ = "members:read", _("Look members up")
    WALLET = "wallet", _("Spend and top up stored value")
    POINTS = "points", _("Redeem points")
    EVENTS = "events", _("Record member interactions")


class StoreApiKey(TimeStampedModel):
    """A secret a store's POS sends in the ``X-Api-Key`` header: ``hy_<prefix>_<secret>``.

    Only the SHA-256 of the secret is stored (the secret has 256 bits of entropy, so a fast hash is
    enough); the full key is shown once, when it is created. ``prefix`` finds the row.
    """

    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100, help_text=_("Which POS or system uses the key."))
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(_("secret hash"), max_length=64, editable=False)
    scopes = models.CharField(
        _("scopes"), max_length=200, help_text=_("Comma-separated: orders, members:read, wallet, points, events.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("store API key")
        verbose_name_plural = _("store API keys")
        constraints = [models.CheckConstraint(condition=~Q(scopes=""), name="storeapikey_has_scopes")]

    def __str__(self):
        return f"{self.name} (hy_{self.prefix}_…)"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(scope.strip() for scope in self.scopes.split(",") if scope.strip())


class TopUpIntent(ProductRestricted, TimeStampedModel):
    """A member's wish to top up the wallet, paid through WeChat Pay under ``out_trade_no``.

    The wallet is credited once, by the payment callback, with the idempotency key
    ``wxpay:<transaction_id>``; ``wallet_entry`` is the top-up it made.

    A top-up offer chosen when the intent was created (``campaigns`` checks it then) is written
    here as data — ``bonus``, ``offer_code`` and a points multiplier for some days — and the payment
    credits exactly that: the member gets what they were shown.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for payment")
        PAID = "paid", _("Paid")
        CLOSED = "closed", _("Closed")
        REFUSED = "refused", _("Paid but refused: refund the payment")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="top_up_intents"
    )
    out_trade_no = models.CharField(_("out trade no."), max_length=32, unique=True)
    amount = models.DecimalField(_("amount"), help_text=_("What the member pays: the principal."), **MONEY)
    bonus = models.DecimalField(_("bonus"), default=Decimal("0.00"), **MONEY)
    offer_code = models.CharField(_("offer code"), max_length=64, blank=True)
    points_multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Given with the payment by the offer, for the member's orders of the next days."),
    )
    multiplier_days = models.PositiveSmallIntegerField(_("multiplier days"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    prepay_id = models.CharField(_("prepay id"), max_length=64, blank=True)
    transaction_id = models.CharField(_("WeChat Pay transaction id"), max_length=32, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    wallet_entry = models.OneToOneField(
        WalletEntry,
        verbose_name=_("wallet entry"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="top_up_intent",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("top-up intent")
        verbose_name_plural = _("top-up intents")
        indexes = [models.Index(fields=["member", "-created_at"], name="topupintent_member_created")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="topupintent_amount_positive"),
            models.CheckConstraint(condition=Q(bonus__gte=0), name="topupintent_bonus_gte_0"),
            models.UniqueConstraint(
                fields=["transaction_id"], condition=~Q(transaction_id=""), name="topupintent_transaction_unique"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid")
                | (Q(wallet_entry__isnull=False, paid_at__isnull=False) & ~Q(transaction_id="")),
                name="topupintent_paid_has_entry",
            ),
        ]

    def __str__(self):
        return f"{self.out_trade_no} ¥{self.amount} ({self.get_status_display()})"


class ApiIdempotencyRecord(models.Model):
    """The first successful response to a write sent with an ``Idempotency-Key`` header.

    Scoped to the store whose key sent it (or to the member): the same key and body answer with
    this response again; the same key with another body is refused. Written in the same
    transaction as the write itself, so a record exists exactly when the write committed.
    """

    # Both are indexed by the partial unique constraints below (a lookup or a cascade by store or
    # member uses them): no separate foreign-key index to write on every POS request.
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    key = models.CharField(_("idempotency key"), max_length=64)
    operation = models.CharField(_("operation"), max_length=100)
    request_hash = models.CharField(_("request hash"), max_length=64)
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.JSONField(_("response body"), encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API idempotency record")
        verbose_name_plural = _("API idempotency records")
        indexes = [models.Index(fields=["created_at"], name="apiidem_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "key"], condition=Q(store__isnull=False), name="apiidem_store_key_unique"
            ),
            models.UniqueConstraint(
                fields=["member", "key"], condition=Q(member__isnull=False), name="apiidem_member_key_unique"
            ),
            models.CheckConstraint(
                condition=Q(store__isnull=False, member__isnull=True) | Q(store__isnull=True, member__isnull=False),
                name="apiidem_one_scope",
            ),
        ]

    def __str__(self):
        return f"{self.operation} [{self.key}] → {self.response_status}"
