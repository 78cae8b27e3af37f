"""Texts stored in both languages: ``name``/``description``/… hold the Chinese (or whatever an
operator wrote), ``name_en``/``description_en``/… the English, optional. Pages show the user's
language and fall back to the other one (``members.formatting.local_name``)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from members.formatting import local_name

__all__ = ["LocalTexts", "english_description", "english_name"]


def english_name(max_length: int = 200) -> models.CharField:
    return models.CharField(
        _("name (English)"),
        max_length=max_length,
        blank=True,
        help_text=_("Shown on English pages; empty: the name above."),
    )


def english_description() -> models.TextField:
    return models.TextField(
        _("description (English)"), blank=True, help_text=_("Shown on English pages; empty: the description above.")
    )


class LocalTexts:
    """``display_name`` and ``display_description`` in the page's language (a plain mixin)."""

    @property
    def display_name(self) -> str:
        return local_name(self.name, self.name_en)

    @property
    def display_description(self) -> str:
        return local_name(self.description, self.description_en)

    def __str__(self):
        return self.display_name
