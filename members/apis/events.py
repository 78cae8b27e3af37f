"""Interactions: a member's events from the mini-program (``POST /me/events``) and from a store's
till (``POST /pos/events``), in batches of up to 100, each event once by its ``id`` — a retried batch
stores nothing twice and says how many were duplicates. Rate-limited per member or key; a batch with
a bad event is refused whole with the event's index in the field (``events.3.kind``)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from members.apis.base import MemberApi, PosApi, StrictSerializer
from members.apis.pos import member_from
from members.models import ApiScope, Interaction, Member
from members.services.interactions import KINDS_BY_SOURCE, MAX_BATCH, EventIn, interactions_record

Kind, Source = Interaction.Kind, Interaction.Source
KIND_NAMES = {kind.name.lower(): kind for kind in Kind}


def _kind_field(source: int) -> serializers.ChoiceField:
    names = [name for name, kind in KIND_NAMES.items() if kind in KINDS_BY_SOURCE[source]]
    return serializers.ChoiceField(choices=names, help_text=_("What the member did."))


class _EventSerializer(StrictSerializer):
    id = serializers.CharField(max_length=64, help_text=_("Your id of the event (e.g. a UUID): sent twice, kept once."))
    occurred_at = serializers.DateTimeField()
    detail = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text=_("E.g. the page, or the activity's name.")
    )


class MemberEventSerializer(_EventSerializer):
    kind = _kind_field(Source.MINI_PROGRAM)


class PosEventSerializer(_EventSerializer):
    kind = _kind_field(Source.POS)


class RecordedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text=_("Events stored now."))
    duplicates = serializers.IntegerField(help_text=_("Events already stored (sent before, or twice in the batch)."))


def _record(member: Member, events: list[dict], *, source: int, store=None) -> Response:
    batch = [
        EventIn(
            event_id=event["id"],
            kind=KIND_NAMES[event["kind"]],
            occurred_at=event["occurred_at"],
            detail=event.get("detail", ""),
        )
        for event in events
    ]
    recorded = interactions_record(member=member, events=batch, source=source, store=store)
    return Response(RecordedSerializer(recorded).data)


class MemberEventsApi(MemberApi):
    throttle_scope = "member_events"

    class InputSerializer(StrictSerializer):
        events = MemberEventSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)

    @extend_schema(
        operation_id="me_events_create",
        request=InputSerializer,
        responses={200: RecordedSerializer},
        tags=["me"],
        summary="Send my interactions (page views, shares, check-ins, activities joined)",
        description=_("Up to 100 events per batch; each is kept once by its id, so a batch may be resent safely."),
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        member = Member.objects.get(pk=self.principal.member_id)
        return _record(member, data["events"], source=Source.MINI_PROGRAM)


class PosEventsApi(PosApi):
    required_scope = ApiScope.EVENTS
    throttle_scope = "pos_events"

    class InputSerializer(StrictSerializer):
        qr_code = serializers.CharField(max_length=128, help_text=_("The member's QR code, scanned at the counter."))
        events = PosEventSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)

    @extend_schema(
        operation_id="pos_events_create",
        request=InputSerializer,
        responses={200: RecordedSerializer},
        tags=["pos"],
        summary="Record a member's interactions at the store: check-ins, services used, activities (scope: events)",
        description=_("Up to 100 events per batch; each is kept once by its id, so a batch may be resent safely."),
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        member = member_from(data, qr_only=True)  # the member is at the counter
        return _record(member, data["events"], source=Source.POS, store=self.principal.store)
