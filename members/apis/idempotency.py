"""The ``Idempotency-Key`` header: a retried write answers with the first response.

``respond_once`` runs the write and stores its response in ``ApiIdempotencyRecord`` in one
transaction, scoped to the caller (a store or a member):

- a new key: the write runs; its (2xx) response is stored with a hash of the request;
- the same key and the same request (method, path and JSON body, whatever the key order): the
  stored response is answered again — same status, same body — with ``Idempotent-Replayed: true``;
- the same key with a different request: 422 ``idempotency_key_reused``, nothing written.

The write runs first and its answer is inserted last, in the same transaction and statement
(``INSERT … ON CONFLICT DO NOTHING``): when the key was used before — by a request that committed
first, which a concurrent retry's insert waits for — the write rolls back and the stored answer is
replayed (or refused). Every write behind a key is itself unique (orders and refunds by external
id), so a concurrent retry waits at that row first and is answered as a repeat. A write that fails
stores nothing, and the request may be retried; if its key was answered before, that answer wins.

Records are kept ``settings.HUIYUAN_IDEMPOTENCY_KEEP_DAYS`` (7) days, then purged nightly
(``members.services.idempotency``). A retry after that is still safe: orders and refunds are unique
by external id and every ledger movement by its own (store-scoped) key, so it is answered as a
repeat of what was recorded (``200``) or refused — never written twice.
"""

import hashlib
import json
import re
from collections.abc import Callable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from members import rows
from members.apis.errors import IdempotencyKeyReused
from members.models import ApiIdempotencyRecord, Member, Store

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_KEY = re.compile(KEY_PATTERN)
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=True,
    pattern=KEY_PATTERN,
    description=str(
        _(
            "A key you choose for this operation (1–64 letters, digits, '.', '_', ':' or '-'), e.g. a UUID. "
            "Retrying with the same key and body returns the first response; the same key with another body "
            "is refused with 422."
        )
    ),
)


def idempotency_key(request) -> str:
    """The request's ``Idempotency-Key``, or a field-level 400."""
    key = request.headers.get(HEADER, "")
    if not key:
        message, code = _("This header is required for this operation."), "required"
    elif not _KEY.match(key):
        message, code = _("Use 1–64 letters, digits, '.', '_', ':' or '-'."), "invalid"
    else:
        return key
    raise ValidationError({HEADER: [serializers.ErrorDetail(message, code=code)]})


def request_hash(request) -> str:
    body = json.dumps(
        {"method": request.method, "path": request.path, "body": request.data},
        sort_keys=True,
        cls=DjangoJSONEncoder,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


_TABLE = ApiIdempotencyRecord._meta.db_table
_BODY = ApiIdempotencyRecord._meta.get_field("response_body")


def _record(
    *, store: Store | None, member: Member | None, key: str, operation: str, fingerprint: str, status: int, body
) -> bool:
    """Insert the answer for ``key`` in its scope — one statement; False if the key was used before
    (by a request that committed first: the insert waits for a concurrent one)."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each ``connection.x`` looks the connection up again
    scope_column = "store_id" if store is not None else "member_id"
    table = db.ops.quote_name(_TABLE)
    now = db.ops.adapt_datetimefield_value(timezone.now())
    stored = _BODY.get_db_prep_save(body, db)
    found = rows.fetch_prepared(
        f"INSERT INTO {table} (store_id, member_id, key, operation, request_hash, response_status, "  # noqa: S608
        "response_body, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT ({scope_column}, key) WHERE {scope_column} IS NOT NULL DO NOTHING RETURNING id",
        [
            getattr(store, "pk", None),
            getattr(member, "pk", None),
            key,
            operation,
            fingerprint,
            status,
            stored,
            now,
            now,
        ],
    )
    return bool(found)


class _KeyUsed(Exception):
    """Raised inside the transaction to roll back a write whose key was used before."""


def _answered(*, store: Store | None, member: Member | None, key: str) -> ApiIdempotencyRecord | None:
    scope = {"store": store} if store is not None else {"member": member}
    return ApiIdempotencyRecord.objects.filter(key=key, **scope).first()


def _replay(record: ApiIdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    return Response(record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def respond_once(
    *,
    request,
    key: str,
    run: Callable[[], tuple[int, dict]],
    store: Store | None = None,
    member: Member | None = None,
) -> Response:
    """Answer ``run()``'s ``(status, body)`` once per key; replay it for retries (see the module doc)."""
    if (store is None) == (member is None):
        raise ValueError("scope the key to a store or to a member")
    fingerprint = request_hash(request)
    operation = f"{request.method} {request.path}"[:100]
    try:
        with transaction.atomic():
            status_code, body = run()
            if not _record(
                store=store,
                member=member,
                key=key,
                operation=operation,
                fingerprint=fingerprint,
                status=status_code,
                body=body,
            ):
                raise _KeyUsed
    except _KeyUsed:
        return _replay(_answered(store=store, member=member, key=key), fingerprint)
    except Exception:
        # The write failed and rolled back. Was the key answered before — for this request (its
        # replay), or for another one (refused)? Then that is the answer; else the error is.
        record = _answered(store=store, member=member, key=key)
        if record is None:
            raise
        return _replay(record, fingerprint)
    return Response(body, status=status_code)
