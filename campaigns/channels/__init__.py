"""Message channels, pluggable like Django's e-mail backends.

    HUIYUAN_MESSAGE_CHANNELS = {
        "log": "campaigns.channels.log.LogChannel",
        "wechat": "campaigns.channels.wechat.WeChatSubscribeChannel",
        "sms": "campaigns.channels.sms.SmsChannel",
    }
    HUIYUAN_DEFAULT_CHANNEL = "log"

An entry is a dotted path, or ``{"BACKEND": "dotted.path", "OPTIONS": {...}}`` whose options are
passed to the channel (they override the channel's global settings, e.g. a second SMS account).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from campaigns.channels.base import (
    BaseChannel,
    ChannelError,
    PermanentChannelError,
    RetryableChannelError,
    SendResult,
    Transport,
)

DEFAULT_CHANNELS = {
    "log": "campaigns.channels.log.LogChannel",
    "wechat": "campaigns.channels.wechat.WeChatSubscribeChannel",
    "sms": "campaigns.channels.sms.SmsChannel",
}

__all__ = [
    "BaseChannel",
    "ChannelError",
    "PermanentChannelError",
    "RetryableChannelError",
    "SendResult",
    "channel_get",
    "channel_names",
    "default_channel_name",
]


def _configured() -> dict:
    return getattr(settings, "HUIYUAN_MESSAGE_CHANNELS", DEFAULT_CHANNELS)


def channel_names() -> list[str]:
    return list(_configured())


def default_channel_name() -> str:
    return getattr(settings, "HUIYUAN_DEFAULT_CHANNEL", "log")


def channel_get(name: str | None = None, *, transport: Transport | None = None) -> BaseChannel:
    """An instance of the channel configured as ``name`` (default: ``HUIYUAN_DEFAULT_CHANNEL``)."""
    name = name or default_channel_name()
    entry = _configured().get(name)
    if entry is None:
        raise ImproperlyConfigured(f"No message channel {name!r} in HUIYUAN_MESSAGE_CHANNELS.")
    if isinstance(entry, str):
        backend, options = entry, {}
    else:
        backend, options = entry["BACKEND"], dict(entry.get("OPTIONS") or {})
    channel_class = import_string(backend)
    return channel_class(transport=transport, **options)
