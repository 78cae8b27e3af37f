"""Schemathesis against our own OpenAPI schema, in-process: no 5xx, every response as documented.

Every operation gets a bounded number of generated requests (positive data: what the schema
allows), sent as member A or with store A's key as the operation's security asks; staff-only
operations get anonymous requests, which they refuse as documented (403). Runs through
the WSGI app inside the test's transaction, so it needs no server and writes nothing that stays.
"""

import datetime as dt
import time

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from campaigns.models import CouponTemplate, TopUpOffer
from campaigns.services.coupons import coupon_grant
from members.models import MemberPointsMultiplier
from members.services.api_keys import store_api_key_create
from members.services.tokens import member_tokens_issue
from members.services.wallet import wallet_top_up
from tests.api import fakes
from tests.factories import OrderFactory, RewardFactory

pytestmark = pytest.mark.django_db

PHONE = "/wxa/business/getuserphonenumber"
EXAMPLES_PER_OPERATION = 8
TIME_BUDGET_SECONDS = 45
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class InTransactionWsgi:
    """Django's WSGI app, minus the per-request connection clean-up that would end the test's transaction."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            body = b"".join(response)
            response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        return [body]


def fuzz(operation, headers):
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def test_no_server_errors_and_responses_match_the_schema(member_a, store_a, settings):
    # given: a member with data, a store key with every scope, generous throttles
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "100000/min"),
    }
    fakes.transport.route("/sns/jscode2session", {"openid": "o-fuzz", "session_key": "SK"}, {"errcode": 40029})
    fakes.transport.route("/cgi-bin/token", {"access_token": "AT", "expires_in": 7200})
    fakes.transport.route(PHONE, {"errcode": 0, "phone_info": {"purePhoneNumber": "13800000077", "countryCode": "86"}})
    order = OrderFactory(member=member_a, store=store_a)
    wallet_top_up(member=member_a, amount_paid="50.00", idempotency_key="seed")
    # rows for the campaign-backed lists, so their pages are checked against the schema too
    percent = CouponTemplate.objects.create(
        name="85折", slug="fuzz-15", kind=CouponTemplate.Kind.PERCENTAGE, percent_off=15, max_discount="30.00"
    )
    percent.stores.set([store_a])
    coupon_grant(template=percent, member=member_a, source="fuzz", idempotency_key="fuzz-coupon")
    TopUpOffer.objects.create(name="储值 100 送 5", code="fuzz-100-5", min_amount="100", bonus_amount="5")
    RewardFactory(name="积分换券", coupon_template=percent, points_price=100)
    MemberPointsMultiplier.objects.create(
        member=member_a,
        multiplier="2.00",
        starts_at=order.paid_at,
        ends_at=order.paid_at + dt.timedelta(days=400),
        idempotency_key="fuzz-multiplier",
    )
    _key, secret = store_api_key_create(store=store_a, name="POS", scopes="orders,members:read,wallet,points")
    bearer = member_tokens_issue(member_id=member_a.pk)["access"]
    app = InTransactionWsgi()
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
    started = time.monotonic()
    tested = []

    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/v1/"):
            continue
        security = {name for requirement in operation.definition.raw.get("security", []) for name in requirement}
        headers = {}
        if "memberToken" in security:
            headers["Authorization"] = f"Bearer {bearer}"
        if "storeApiKey" in security:
            headers["X-Api-Key"] = secret

        fuzz(operation, headers)()  # when / then
        tested.append(operation.label)
        assert time.monotonic() - started < TIME_BUDGET_SECONDS, f"over budget after {len(tested)} operations"

    assert len(tested) >= 20
