"""Pagination for every list: ``limit`` (1–100, default 20) and ``offset``.

A ``limit`` or ``offset`` that is not a whole number in range is refused with a field-level 400
instead of being silently replaced, so a client asking for 10,000 rows learns it gets at most 100.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 1_000_000


class CappedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100

    def _whole_number(self, request, name: str, *, minimum: int, maximum: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
            raise ValidationError(
                {
                    name: [
                        _("Give a whole number from %(minimum)s to %(maximum)s.")
                        % {"minimum": minimum, "maximum": maximum}
                    ]
                },
                code="out_of_range",
            )
        return int(raw)

    def get_limit(self, request):
        return self._whole_number(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request):
        return self._whole_number(request, self.offset_query_param, minimum=0, maximum=MAX_OFFSET, default=0)

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"].update({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit})
        limit["description"] = str(_("Number of results to return per page (at most %(n)s).") % {"n": self.max_limit})
        offset["schema"].update({"minimum": 0, "maximum": MAX_OFFSET, "default": 0})
        return [limit, offset]

    def get_paginated_response_schema(self, schema):
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = ["count", "next", "previous", "results"]
        return paginated
