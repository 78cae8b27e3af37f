"""The default channel: writes the message to the log and reports success. Nothing leaves the
machine — the right choice until WeChat or SMS credentials are configured."""

from __future__ import annotations

import logging

from campaigns.channels.base import BaseChannel, SendResult
from campaigns.models import OutboxMessage

logger = logging.getLogger("campaigns.messages")


class LogChannel(BaseChannel):
    name = "log"

    def send(self, message: OutboxMessage) -> SendResult:
        logger.info(
            "message %s to member %s: template=%s payload=%s",
            message.pk,
            message.member_id,
            message.template,
            message.payload,
        )
        return SendResult(provider_message_id=f"log-{message.pk}")
