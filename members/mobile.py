"""Mobile numbers in one canonical form: the 11 digits of a mainland China number.

``+86 138-0013-8000``, ``8613800138000``, ``008613800138000`` and full-width digits
(``１３８００１３８０００``) all normalise to ``13800138000``. The canonical form is what the
database stores and what uniqueness is checked on.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_CANONICAL = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s\-().·]")


def normalize_mobile(raw: str) -> str:
    """Return the canonical 11-digit form of ``raw`` or raise ``ValidationError``."""
    text = unicodedata.normalize("NFKC", str(raw or "")).strip()
    text = _SEPARATORS.sub("", text)
    international = False
    for prefix in ("+", "00"):
        if text.startswith(prefix):
            text, international = text[len(prefix) :], True
            break
    if len(text) == 13 and text.startswith("86"):
        text = text[2:]
    elif international:
        text = ""  # another country's number
    if not _CANONICAL.match(text):
        raise ValidationError(
            _("“%(value)s” is not a valid mainland China mobile number."),
            code="invalid_mobile",
            params={"value": raw},
        )
    return text


def mask_mobile(mobile: str) -> str:
    """``13800138000`` → ``138****8000``, for places where the full number is not needed."""
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) == 11 else mobile
