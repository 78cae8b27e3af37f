"""Figures written for people, in the language of the page: money with ¥ and thousands separators,
counts with separators, rates as percentages, durations in seconds or minutes, and a name in the
user's language. Templates use them as filters (``{% load huiyuan %}``: ``|yuan``, ``|count``,
``|percent``, ``|duration``); admin columns and reports call them directly.

``None`` is shown as an em dash everywhere: a figure that does not exist is not zero.
"""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import get_language
from django.utils.translation import gettext as _

MISSING = "—"


def _grouped(value: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"


def yuan(amount, *, places: int = 2) -> str:
    """``Decimal("12345.5")`` → ``¥12,345.50``; ``places=0`` → ``¥12,346``; negative → ``-¥12.00``."""
    if amount is None or amount == "":
        return MISSING
    value = Decimal(str(amount))
    sign = "-" if value < 0 else ""
    return f"{sign}¥{_grouped(abs(value), places)}"


def count(value) -> str:
    """``1234567`` → ``1,234,567``."""
    if value is None or value == "":
        return MISSING
    return f"{int(value):,}"


def percent(fraction, *, places: int = 1, signed: bool = False) -> str:
    """A fraction as a percentage: ``0.1234`` → ``12.3%``; ``signed`` writes ``+12.3%`` (changes)."""
    if fraction is None or fraction == "":
        return MISSING
    value = Decimal(str(fraction)) * 100
    text = _grouped(value, places)
    if signed and value > 0:
        text = f"+{text}"
    return f"{text}%"


def duration(value) -> str:
    """Seconds (or a ``timedelta``) for people: ``0.0995`` → ``0.1 s`` (``0.1 秒``), ``125`` →
    ``2 min 5 s`` (``2 分 5 秒``), ``7260`` → ``2 h 1 min`` (``2 小时 1 分``)."""
    if value is None or value == "":
        return MISSING
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        shown = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
        return _("%(seconds)s s") % {"seconds": shown}
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return _("%(minutes)s min %(seconds)s s") % {"minutes": minutes, "seconds": rest}
    hours, minutes = divmod(minutes, 60)
    return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}


def in_chinese() -> bool:
    return (get_language() or "").lower().startswith("zh")


def local_name(chinese: str, english: str, fallback: str = "") -> str:
    """The name in the page's language, else the other one, else ``fallback``."""
    first, second = (chinese, english) if in_chinese() else (english, chinese)
    return first or second or fallback
