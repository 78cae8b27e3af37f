"""Template filters for figures written for people (``members.formatting``)."""

from django import template

from members import formatting

register = template.Library()

register.filter("yuan", formatting.yuan)
register.filter("count", formatting.count)
register.filter("duration", formatting.duration)


@register.filter
def yuan0(amount):
    """Whole yuan: ``¥12,346``."""
    return formatting.yuan(amount, places=0)


@register.filter
def percent(fraction, places=1):
    return formatting.percent(fraction, places=int(places))


@register.filter
def signed_percent(fraction, places=1):
    return formatting.percent(fraction, places=int(places), signed=True)
