"""What every endpoint shares: base views, strict input serializers, money fields, the schema class.

- Input serializers derive from ``StrictSerializer``: a body field the operation does not know
  (``balance``, ``tier``, ``store`` …) is refused with a 400 naming it, never ignored.
- Money travels as a decimal string with at most two places (``MoneyField``); numbers are
  refused, so no float ever becomes an amount.
- List endpoints (``ListApi``) accept only their documented query parameters (filters, ``ordering``,
  ``limit``, ``offset``), paginate with a capped page size, and filter from an allow-list.
- ``ApiAutoSchema`` documents the error responses each operation can give, in the one error shape.
"""

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from members.apis.authentication import (
    HasStoreScope,
    IsMember,
    MemberPrincipal,
    MemberTokenAuthentication,
    StoreApiKeyAuthentication,
    StorePrincipal,
)
from members.apis.errors import ErrorSerializer
from members.apis.pagination import CappedLimitOffsetPagination
from members.apis.parsers import JsonParser
from members.apis.throttling import ApiScopedThrottle
from members.money import MAX_AMOUNT

ERROR_DESCRIPTIONS = {
    400: _("Invalid input: see `fields`."),
    401: _("Not authenticated, or the credentials are invalid."),
    403: _("Authenticated, but not allowed to do this."),
    404: _("Not found (or not yours)."),
    409: _("Conflicts with what was recorded before."),
    422: _("The Idempotency-Key was already used for a different request."),
    429: _("Too many requests; see Retry-After."),
    503: _("An outside service did not answer; try again later."),
}


class StrictSerializer(serializers.Serializer):
    """A plain input serializer that refuses body fields it does not declare."""

    def to_internal_value(self, data):
        errors = {}
        value = None
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            errors.update(exc.detail)
        if isinstance(data, Mapping):
            for name in data:
                if name not in self.fields:
                    errors[str(name)[:100]] = [
                        serializers.ErrorDetail(_("Unknown field: this operation does not take it."), code="unknown")
                    ]
        if errors:
            raise ValidationError(errors)
        return value


class MoneyField(serializers.DecimalField):
    """An amount in yuan as a decimal string: ``"12.50"``. At least ``min_value`` (0.01 by default)."""

    default_error_messages = {"not_a_string": _('Send amounts as decimal strings, e.g. "12.50".')}

    def __init__(self, *, min_value=Decimal("0.01"), **kwargs):
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("max_value", MAX_AMOUNT)
        super().__init__(min_value=min_value, coerce_to_string=True, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class _UtcIsoDateTimeField(IsoDateTimeField):
    default_error_messages = {"out_of_range": _("This time is out of range.")}

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time filter that compares in UTC: Python accepts offsets up to ±23:59, PostgreSQL
    only up to ±15:59, so ``…-16:44`` would otherwise reach the database and fail there."""

    field_class = _UtcIsoDateTimeField


class ApiAutoSchema(AutoSchema):
    """Adds the error responses an operation can give, each in the one error shape."""

    def get_serializer_name(self, serializer, direction):
        """Nested ``InputSerializer``/``OutputSerializer`` classes are named after their view:
        ``PosOrderCreateApi.InputSerializer`` → ``PosOrderCreateInput``."""
        qualname = type(serializer).__qualname__
        if "." not in qualname:
            return super().get_serializer_name(serializer, direction)
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in qualname.split("."))

    def is_excluded(self) -> bool:
        return bool(getattr(self.view, "excluded_from_schema", lambda: False)())

    def get_operation(self, *args, **kwargs):
        """Integer path parameters are documented as Django's ``<int:…>`` matches them: digits only."""
        operation = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            if parameter.get("in") == "path" and parameter.get("schema", {}).get("type") == "integer":
                parameter["schema"].setdefault("minimum", 0)
        return operation

    def _error_statuses(self) -> list[int]:
        view = self.view
        codes: set[int] = set()
        if self.method != "GET" or isinstance(view, ListApi):
            codes.add(400)
        if view.authentication_classes and AllowAny not in view.permission_classes:
            codes.add(401)
        if HasStoreScope in view.permission_classes or IsAdminUser in view.permission_classes:
            codes.add(403)
        if "{" in self.path:
            codes.add(404)
        if getattr(view, "throttle_scope", None):
            codes.add(429)
        codes.update(getattr(view, "extra_error_statuses", ()))
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_statuses():
            if str(code) not in responses:
                response = self._get_response_for_code(ErrorSerializer, str(code), direction=direction)
                response["description"] = str(ERROR_DESCRIPTIONS.get(code, ""))
                responses[str(code)] = response
        return responses


_shared_serializers: dict[type, serializers.Serializer] = {}


class _ApiDefaults:
    schema = ApiAutoSchema()
    parser_classes = (JsonParser,)
    renderer_classes = (JSONRenderer,)
    authentication_classes: tuple = ()
    permission_classes: tuple = (AllowAny,)
    throttle_classes: tuple = ()
    throttle_scope: str | None = None
    extra_error_statuses: tuple[int, ...] = ()

    def get_throttles(self):
        return [ApiScopedThrottle()] if self.throttle_scope else []

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # A NUL byte can name nothing (PostgreSQL text cannot hold one): not found, without a query.
        if any("\x00" in value for value in kwargs.values() if isinstance(value, str)):
            raise NotFound()

    def validated(self, serializer_class, data, *, shared: bool = False) -> dict:
        """``data`` validated by ``serializer_class``, or a 400 with field-level messages.

        ``shared``: validate with one unbound instance of the class, kept for the process — what
        ``is_valid`` runs, without building and deep-copying the fields on every request (hot
        endpoints, e.g. recording an order). Only for serializers that need no context.
        """
        if shared:
            serializer = _shared_serializers.get(serializer_class)
            if serializer is None:
                serializer = _shared_serializers[serializer_class] = serializer_class()
            return serializer.run_validation(data)
        serializer = serializer_class(data=data, context={"request": self.request})
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class _MemberDefaults(_ApiDefaults):
    authentication_classes = (MemberTokenAuthentication,)
    permission_classes = (IsMember,)

    @property
    def principal(self) -> MemberPrincipal:
        return self.request.user


class _PosDefaults(_ApiDefaults):
    authentication_classes = (StoreApiKeyAuthentication,)
    permission_classes = (HasStoreScope,)
    required_scope: str = ""

    @property
    def principal(self) -> StorePrincipal:
        return self.request.user


class PublicApi(_ApiDefaults, APIView):
    pass


class MemberApi(_MemberDefaults, APIView):
    pass


class PosApi(_PosDefaults, APIView):
    pass


class ListApi(GenericAPIView):
    """A paginated, filtered list. Subclasses set ``OutputSerializer``, ``filterset_class``, ``get_queryset``."""

    filter_backends = (DjangoFilterBackend,)
    pagination_class = CappedLimitOffsetPagination
    filterset_class = None
    OutputSerializer: type[serializers.Serializer]

    def get_serializer_class(self):
        return self.OutputSerializer

    def allowed_query_params(self) -> set[str]:
        names = {"limit", "offset"}
        if self.filterset_class is not None:
            names |= set(self.filterset_class.base_filters)
        return names

    def get(self, request, *args, **kwargs):
        unknown = sorted(set(request.query_params) - self.allowed_query_params())
        if unknown:
            raise ValidationError(
                {
                    name[:100]: [serializers.ErrorDetail(_("Unknown query parameter."), code="unknown")]
                    for name in unknown
                }
            )
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.OutputSerializer(page, many=True, context={"request": request}).data)


class MemberListApi(_MemberDefaults, ListApi):
    pass
