"""Message channels, pluggable like Django's e-mail backends.

    HUIYUAN_MESSAGE_CHANNELS = {
        "log": "campaigns.channels.log.LogChannel",
        "wechat": "campaigns.channels.wechat.WeChatSubscribeChannel",
        "sms": "campaigns.channels.sms.SmsChannel",
    }
    HUIYUAN_DEFAULT_CHANNEL = "log"

An entry is a dotted path, or ``{"BACKEND": "dotted.path", "OPTIONS": {...}}`` whose options are
passed to the channel (they override the channel's global settings, e.g. a second SMS account).
The names alone (``channel_names``, ``default_channel_name``) live in ``campaigns.channel_registry``,
which the models may import; ``channel_get`` loads a channel's code.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from campaigns.channel_registry import DEFAULT_CHANNELS, channel_names, configured_channels, default_channel_name
from campaigns.channels.base import (
    BaseChannel,
    ChannelError,
    PermanentChannelError,
    RetryableChannelError,
    SendResult,
    Transport,
)

__all__ = [
    "DEFAULT_CHANNELS",
    "BaseChannel",
    "ChannelError",
    "PermanentChannelError",
    "RetryableChannelError",
    "SendResult",
    "channel_get",
    "channel_names",
    "channels_of_kind",
    "default_channel_name",
]


def channel_get(name: str | None = None, *, transport: Transport | None = None) -> BaseChannel:
    """An instance of the channel configured as ``name`` (default: ``HUIYUAN_DEFAULT_CHANNEL``)."""
    name = name or default_channel_name()
    entry = configured_channels().get(name)
    if entry is None:
        raise ImproperlyConfigured(f"No message channel {name!r} in HUIYUAN_MESSAGE_CHANNELS.")
    if isinstance(entry, str):
        backend, options = entry, {}
    else:
        backend, options = entry["BACKEND"], dict(entry.get("OPTIONS") or {})
    channel_class = import_string(backend)
    return channel_class(transport=transport, **options)


def channels_of_kind(kind: type[BaseChannel]) -> dict[str, BaseChannel]:
    """The configured channels (name → instance) whose backend is ``kind`` or a subclass: the ones a
    provider's callback (WeChat's push, an SMS receipt) can be about."""
    found = {}
    for name in channel_names():
        channel = channel_get(name)
        if isinstance(channel, kind):
            found[name] = channel
    return found
