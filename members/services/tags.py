"""Member tags: staff add and remove them (``members.add_membertag`` / ``delete_membertag``).

Adding is idempotent (a tag the member has already is left as it was, with its first author; a tag
a rule gave becomes the staff member's, so the nightly run no longer takes it off); removing a tag
the member does not have changes nothing (a rule's tag comes back in the next run while the member
qualifies). A name is trimmed, at most 32 characters,
without , ; or | (which separate tags when typed in a list)."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from members.models import Member, MemberTag, split_labels
from members.models.tags import TAG_NAME_MAX_LENGTH

__all__ = ["member_tag_add", "member_tag_remove", "member_tags_names"]


def _clean(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ValidationError(_("Give the tag a name."), code="required")})
    if len(name) > TAG_NAME_MAX_LENGTH:
        raise ValidationError(
            {
                "name": ValidationError(
                    _("A tag has at most %(max)s characters.") % {"max": TAG_NAME_MAX_LENGTH}, code="max_length"
                )
            }
        )
    if split_labels(name) != (name,):
        raise ValidationError({"name": ValidationError(_("A tag cannot hold , ; or |."), code="invalid")})
    return name


def member_tag_add(*, member: Member, name: str, actor: AbstractBaseUser | None = None) -> MemberTag:
    """Tag ``member`` with ``name`` (by ``actor``); the existing tag when they have it already."""
    tag, _created = MemberTag.objects.get_or_create(member=member, name=_clean(name), defaults={"added_by": actor})
    if tag.rule_id is not None:
        tag.rule, tag.added_by = None, actor
        tag.save(update_fields=["rule", "added_by", "updated_at"])
    return tag


def member_tag_remove(*, member: Member, name: str) -> bool:
    """Take the tag ``name`` off ``member``. True when it was there."""
    deleted, _rows = MemberTag.objects.filter(member=member, name=(name or "").strip()).delete()
    return bool(deleted)


def member_tags_names() -> list[str]:
    """Every tag in use, by how many members have it (most first): for filters and choosers."""
    return list(
        MemberTag.objects.values("name").annotate(n=Count("pk")).order_by("-n", "name").values_list("name", flat=True)
    )
