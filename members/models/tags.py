"""Member tags (客户标签, seed 000): short labels staff put on a member — 爱喝少糖, 企业客户,
过敏:坚果 — with who added them and when. A tag is one row per (member, name); removing it deletes
the row, and the audit trail keeps both (who added, who removed, when). Tags narrow campaigns and
the member list, and go out with the member export."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, TimeStampedModel

__all__ = ["MemberTag"]

TAG_NAME_MAX_LENGTH = 32


class MemberTag(TimeStampedModel):
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="tags", db_index=False
    )
    name = models.CharField(
        _("tag"),
        max_length=TAG_NAME_MAX_LENGTH,
        validators=[RegexValidator(r"^[^,，;；|]+$", _("A tag cannot hold , ; or |."))],
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("added by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["member", "name"]
        verbose_name = _("member tag")
        verbose_name_plural = _("member tags")
        indexes = [models.Index(fields=["name", "member"], name="membertag_name_member")]
        constraints = [
            models.UniqueConstraint(fields=["member", "name"], name="membertag_member_name"),
            models.CheckConstraint(condition=~Q(name=""), name="membertag_name_not_blank"),
        ]

    def __str__(self):
        return self.name
