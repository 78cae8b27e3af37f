"""The one error format of the API, and the exception handler that produces it.

Every error answers with::

    {"code": "invalid", "message": "Some fields are invalid.",
     "fields": {"amount": [{"code": "min_value", "message": "Ensure this value is ..."}]}}

``code`` is stable and meant for programs; ``message`` is for people (translated); ``fields``
maps each offending field (dotted for nested ones, ``non_field_errors`` for the whole body,
``Idempotency-Key`` for that header) to its problems, and is empty when no field is to blame.

Django's ``ValidationError`` (raised by services) becomes a 400 with the same field-level
detail; an ``IdempotencyConflict`` — and any ``ValidationError`` whose codes are all
``conflict`` / ``duplicate`` — becomes a 409. A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is a 413
(``too_large``), JSON nested past Python's recursion limit a 400. Unexpected exceptions become a logged 500 in the
same shape (unless ``DEBUG``, where Django shows the traceback).
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from members.apis.parsers import PayloadTooLarge, TooDeeplyNested
from members.services.orders import IdempotencyConflict

logger = logging.getLogger(__name__)

CONFLICT_CODES = frozenset({"conflict", "duplicate"})
NON_FIELD = "non_field_errors"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with the current state of the resource.")
    default_code = "conflict"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = _(
        "This Idempotency-Key was already used for a different request; send a new key for a new operation."
    )
    default_code = "idempotency_key_reused"


class RefreshRefused(exceptions.APIException):
    """401 (not ``AuthenticationFailed``, which DRF turns into 403 on a view without authenticators)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = _("The refresh token is invalid, expired or revoked.")
    default_code = "token_invalid"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("An outside service (WeChat) did not answer; try again later.")
    default_code = "upstream_unavailable"


class FieldErrors(exceptions.APIException):
    """Field-level errors with a status other than 400 (e.g. a 409 from a service)."""

    def __init__(self, fields: dict, *, status_code: int, code: str, message):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.fields = fields


# --- the documented shape ---


class FieldErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("Stable error code, e.g. invalid, not_found, conflict, throttled."))
    message = serializers.CharField(help_text=_("What went wrong, for people."))
    fields = serializers.DictField(
        child=FieldErrorSerializer(many=True), help_text=_("Problems by field; empty when no field is to blame.")
    )


# --- building it ---


def _is_leaf(item) -> bool:
    return isinstance(item, dict) and set(item) == {"message", "code"}


def _flatten(detail, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """DRF's ``get_full_details()`` tree → ``{"a.b": [{"code", "message"}]}``."""
    here = prefix or NON_FIELD
    if _is_leaf(detail):
        return {here: [{"code": str(detail["code"]), "message": str(detail["message"])}]}
    if isinstance(detail, list) and all(_is_leaf(item) for item in detail):
        return {here: [{"code": str(item["code"]), "message": str(item["message"])} for item in detail]}
    fields: dict[str, list[dict[str, str]]] = {}
    if isinstance(detail, dict):
        for name, value in detail.items():
            fields.update(_flatten(value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            fields.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        fields[here] = [{"code": "invalid", "message": str(detail)}]
    return fields


def django_validation_fields(exc: DjangoValidationError) -> dict[str, list[dict[str, str]]]:
    items = exc.error_dict.items() if hasattr(exc, "error_dict") else [(NON_FIELD, exc.error_list)]
    fields: dict[str, list[dict[str, str]]] = {}
    for name, errors in items:
        key = NON_FIELD if name == "__all__" else name
        for error in errors:
            for message in error.messages:
                fields.setdefault(key, []).append({"code": error.code or "invalid", "message": str(message)})
    return fields


def _from_django_validation(exc: DjangoValidationError) -> FieldErrors:
    fields = django_validation_fields(exc)
    codes = {error["code"] for errors in fields.values() for error in errors}
    if isinstance(exc, IdempotencyConflict) or (codes and codes <= CONFLICT_CODES):
        return FieldErrors(
            fields, status_code=status.HTTP_409_CONFLICT, code="conflict", message=_first_message(fields, Conflict)
        )
    return FieldErrors(
        fields, status_code=status.HTTP_400_BAD_REQUEST, code="invalid", message=_("Some fields are invalid.")
    )


def _first_message(fields, fallback) -> str:
    for errors in fields.values():
        for error in errors:
            return error["message"]
    return str(fallback.default_detail)


def error_body(*, code: str, message, fields: dict | None = None) -> dict:
    return {"code": code, "message": str(message), "fields": fields or {}}


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = _from_django_validation(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):  # a view that read ``request.body`` itself
        exc = PayloadTooLarge()
    elif isinstance(exc, RecursionError):  # JSON a view decoded itself, nested beyond Python's limit
        exc = TooDeeplyNested()

    if isinstance(exc, FieldErrors):
        body = error_body(code=exc.detail.code, message=exc.detail, fields=exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.get_full_details())
        body = error_body(code="invalid", message=_("Some fields are invalid."), fields=fields)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, (dict, list)):
            body = error_body(
                code=exc.default_code, message=exc.default_detail, fields=_flatten(exc.get_full_details())
            )
        else:
            body = error_body(code=getattr(detail, "code", None) or exc.default_code, message=detail)
    else:
        if settings.DEBUG:
            return None
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        set_rollback()
        return Response(
            error_body(code="server_error", message=_("Something went wrong on our side; try again later.")),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{int(exc.wait)}"
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)
