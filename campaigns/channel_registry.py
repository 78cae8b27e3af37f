"""The configured message channels by name — all that models and forms need to know of channels.

It imports nothing of this app, so ``campaigns.models`` can validate a channel name without
loading the channel code (``campaigns.channels``, which sends the models' messages).
"""

from django.conf import settings

DEFAULT_CHANNELS = {
    "log": "campaigns.channels.log.LogChannel",
    "wechat": "campaigns.channels.wechat.WeChatSubscribeChannel",
    "sms": "campaigns.channels.sms.SmsChannel",
}


def configured_channels() -> dict:
    """``HUIYUAN_MESSAGE_CHANNELS``: name → dotted path or ``{"BACKEND": ..., "OPTIONS": {...}}``."""
    return getattr(settings, "HUIYUAN_MESSAGE_CHANNELS", DEFAULT_CHANNELS)


def channel_names() -> list[str]:
    return list(configured_channels())


def default_channel_name() -> str:
    return getattr(settings, "HUIYUAN_DEFAULT_CHANNEL", "log")
