"""Store API keys: creating one (the secret is shown once) and finding the key a request sent.

A key reads ``hy_<prefix>_<secret>``: the prefix finds the row, the secret is compared by its
SHA-256 in constant time. Only the hash is stored.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from members import rows
from members.caching import KeyedProcessCache
from members.models import ApiScope, Store, StoreApiKey

KEY_PREFIX = "hy"
_PREFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_PREFIX_LENGTH = 12
_ATTEMPTS = 5


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_scopes(scopes: Iterable[str] | str) -> str:
    """Scopes as stored: known names, comma-separated, sorted, each once."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    names = sorted({scope.strip() for scope in scopes if scope and scope.strip()})
    unknown = [name for name in names if name not in ApiScope.values]
    if unknown:
        raise ValidationError({"scopes": _("Unknown scopes: %(scopes)s.") % {"scopes": ", ".join(unknown)}})
    if not names:
        raise ValidationError({"scopes": _("Give the key at least one scope.")})
    return ",".join(names)


def store_api_key_create(
    *, store: Store, name: str, scopes: Iterable[str] | str, actor=None
) -> tuple[StoreApiKey, str]:
    """Create a key for ``store``; returns the row and the full key, which is never shown again."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Name the key after the system that uses it.")})
    cleaned = clean_scopes(scopes)
    for attempt in range(_ATTEMPTS):
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = StoreApiKey.objects.create(
                    store=store,
                    name=name,
                    prefix=prefix,
                    secret_hash=_hash_secret(secret),
                    scopes=cleaned,
                    created_by=actor,
                )
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        return key, f"{KEY_PREFIX}_{prefix}_{secret}"
    raise AssertionError("unreachable")


def store_api_key_deactivate(*, api_key: StoreApiKey) -> None:
    StoreApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
    api_key.is_active = False
    _found_keys.clear()


def store_api_key_find(*, raw_key: str) -> StoreApiKey | None:
    """The active key (with its store) that ``raw_key`` spells, or ``None``.

    Every POS request asks, so a key that was found is kept per process for
    ``HUIYUAN_SETTINGS_CACHE_SECONDS`` (``members.caching``): a deactivated key (or store) is
    refused at once by the process that deactivated it and within that time by every other one.
    Keys that are not found are never kept.
    """
    parts = (raw_key or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2] or len(parts[1]) > _PREFIX_LENGTH:
        return None
    return _found_keys.get(raw_key.strip())


def _find(raw_key: str) -> StoreApiKey | None:
    _kind, prefix, secret = raw_key.split("_", 2)
    # Two short statements (``members.rows``) rather than an ORM join.
    key = rows.get(StoreApiKey, by="prefix", value=prefix)
    if key is None or not key.is_active:
        return None
    key.store = rows.get(Store, by="id", value=key.store_id)
    if key.store is None or not key.store.is_active:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash_secret(secret)):
        return None
    return key


_found_keys = KeyedProcessCache(_find, watch=(StoreApiKey, Store))
