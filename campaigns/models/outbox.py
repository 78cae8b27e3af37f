"""The outbox: every message to a member is a row, written in the same transaction as the grant
that caused it and delivered afterwards by a Celery task (``campaigns.services.outbox``).

Statuses: ``pending`` (waiting for its first or next attempt at ``next_attempt_at``), ``sending``
(claimed by one worker — the claim is a conditional UPDATE, so two workers never send one message
twice), ``sent``, ``failed`` (a permanent error: the user refused, no openid, a bad template — no
retry) and ``dead`` (a transient error that outlived the attempts allowed).

**Engagement**, where the channel reports it (``campaigns.services.engagement``): ``delivered_at``
(the WeChat send-result event, an SMS delivery receipt), ``first_opened_at`` and
``first_clicked_at`` (a tracked link followed, the mini-program reporting an open), with
``open_count`` and ``click_count``. Kept on the message row rather than in an event table: a
report needs only "was it delivered / opened / clicked" per message, which these columns answer
in the same scan of the campaign's messages that counts the sent ones — no table growing with every
click of millions of messages, no join, no de-duplication at read time. The first-times are set
with ``COALESCE`` in one ``UPDATE``, so a repeated callback or a second click never moves them
(the rates count each message once); the counts add up repeats, for who wants them.
"""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import Member, TimeStampedModel

__all__ = ["OutboxMessage"]


class OutboxMessage(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed (permanent error)")
        DEAD = "dead", _("Gave up after retries")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="outbox_messages"
    )
    channel = models.CharField(_("channel"), max_length=30, help_text=_("A key of HUIYUAN_MESSAGE_CHANNELS."))
    template = models.CharField(_("template"), max_length=100)
    payload = models.JSONField(_("payload"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    provider_message_id = models.CharField(_("provider message id"), max_length=100, blank=True)
    delivered_at = models.DateTimeField(
        _("delivered at"), null=True, blank=True, help_text=_("When the channel reported the message delivered.")
    )
    first_opened_at = models.DateTimeField(_("first opened at"), null=True, blank=True)
    first_clicked_at = models.DateTimeField(_("first clicked at"), null=True, blank=True)
    open_count = models.PositiveIntegerField(_("opens"), default=0)
    click_count = models.PositiveIntegerField(_("clicks"), default=0)
    dedupe_key = models.CharField(
        _("deduplication key"), max_length=200, unique=True, help_text=_("One message per key, however often asked.")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        indexes = [
            models.Index(fields=["next_attempt_at"], name="outbox_pending_due", condition=Q(status="pending")),
            models.Index(fields=["claimed_at"], name="outbox_sending_claimed", condition=Q(status="sending")),
            models.Index(fields=["member", "created_at"], name="outbox_member_created"),
            # the channels' callbacks name a message by the provider's id
            models.Index(
                fields=["channel", "provider_message_id"],
                name="outbox_provider_message",
                condition=~Q(provider_message_id=""),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(status="sent") | Q(sent_at__isnull=False), name="outbox_sent_has_time"),
        ]

    def __str__(self):
        return f"{self.template} → {self.member_id} ({self.get_status_display()})"
