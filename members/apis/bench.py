"""The benchmark's floor: a bare DRF view doing two primary-key lookups.

Routed only when ``settings.HUIYUAN_BENCH_FLOOR`` is on (``bench/api.py`` turns it on); not in
the schema. It measures what the framework, the server and the database cost before any of
our work, so the real endpoints can be compared with it.
"""

from rest_framework.response import Response

from members.apis.base import PublicApi
from members.models import Member, Store


class BenchFloorApi(PublicApi):
    @staticmethod
    def excluded_from_schema() -> bool:
        return True

    def get(self, request):
        member = Member.objects.only("id", "name", "home_store_id").get(pk=int(request.query_params["member"]))
        store = Store.objects.only("id", "code").get(pk=int(request.query_params["store"]))
        return Response({"member": member.pk, "name": member.name, "store": store.code})
