"""The API's JSON parser, with the limits a public endpoint needs.

- A body longer than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's limit, 2.5 MB by default) is refused
  with 413 before it is read.
- JSON nested so deeply that Python's decoder gives up (``RecursionError``) is refused with 400.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "too_large"


class TooDeeplyNested(exceptions.ParseError):
    default_detail = _("The JSON is nested too deeply.")
    default_code = "parse_error"


def content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return 0


class JsonParser(JSONParser):
    """DRF's JSON parser, refusing bodies that are too large (413) or nested too deeply (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None and content_length(request) > limit:
            raise PayloadTooLarge()
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise TooDeeplyNested() from None
