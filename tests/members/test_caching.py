"""members.caching: per-process caches of settings rows (ProcessCache, KeyedProcessCache).

The test settings turn caching off (``HUIYUAN_SETTINGS_CACHE_SECONDS = 0``); these tests turn it on
with the ``settings`` fixture.
"""

from decimal import Decimal

import pytest
from django.db.models.signals import post_delete, post_save

from members.caching import KeyedProcessCache, ProcessCache
from members.models import LoyaltyProgram, Store, StoreApiKey, Tier
from members.services import api_keys, points
from members.services.api_keys import store_api_key_create, store_api_key_deactivate, store_api_key_find
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

TTL = 60


@pytest.fixture
def caching_on(settings):
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = TTL
    return settings


@pytest.fixture
def make_cache():
    """Build caches for a test; their signal receivers are disconnected afterwards."""
    made: list[tuple[object, tuple[type, ...]]] = []

    def make(cls, load, *, watch=(), **kwargs):
        cache = cls(load, watch=watch, **kwargs)
        made.append((cache, tuple(watch)))
        return cache

    yield make
    for cache, watch in made:
        for model in watch:
            post_save.disconnect(cache._on_change, sender=model)
            post_delete.disconnect(cache._on_change, sender=model)


@pytest.fixture
def clock(monkeypatch):
    """A monotonic clock the test moves by hand."""

    class Clock:
        now = 1000.0

        def advance(self, seconds: float) -> None:
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr("members.caching.time.monotonic", lambda: fake.now)
    return fake


@pytest.fixture
def empty_caches():
    """The module-level caches of the services start and end empty."""
    points._cached_program.clear()
    api_keys._found_keys.clear()
    yield
    points._cached_program.clear()
    api_keys._found_keys.clear()


def counting(load):
    """``load`` wrapped so that its calls are recorded."""
    calls: list[tuple] = []

    def wrapped(*args):
        calls.append(args)
        return load(*args)

    return wrapped, calls


def tier_names() -> list[str]:
    return list(Tier.objects.order_by("rank").values_list("name", flat=True))


# --- ProcessCache ----------------------------------------------------------------------------


def test_a_value_is_loaded_once_within_the_ttl(caching_on, make_cache):
    # given
    load, calls = counting(object)
    cache = make_cache(ProcessCache, load)
    # when
    first, second, third = cache.get(), cache.get(), cache.get()
    # then
    assert len(calls) == 1
    assert first is second is third


def test_a_ttl_of_zero_loads_every_time_and_keeps_nothing(settings, make_cache):
    # given caching off, as in the test settings
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = 0
    load, calls = counting(object)
    cache = make_cache(ProcessCache, load)
    # when
    values = [cache.get(), cache.get(), cache.get()]
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = TTL
    after_turning_it_on = cache.get()
    # then: three loads, three values, and nothing kept from them
    assert len(calls) == 4
    assert len({id(value) for value in values}) == 3
    assert after_turning_it_on not in values


@pytest.mark.parametrize(("own_ttl", "setting", "loads"), [(0, TTL, 3), (TTL, 0, 1)])
def test_a_caches_own_ttl_wins_over_the_setting(settings, make_cache, own_ttl, setting, loads):
    # given
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = setting
    load, calls = counting(object)
    cache = make_cache(ProcessCache, load, ttl=own_ttl)
    # when
    for _ in range(3):
        cache.get()
    # then
    assert len(calls) == loads


def test_saving_or_deleting_a_watched_model_clears_the_value_at_once(caching_on, make_cache):
    # given a cached list of tier names
    tier = Tier.objects.create(code="gold", name="金卡", rank=1)
    cache = make_cache(ProcessCache, tier_names, watch=(Tier,))
    assert cache.get() == ["金卡"]

    # when the tier is renamed through the ORM
    tier.name = "黑金卡"
    tier.save(update_fields=["name", "updated_at"])
    # then the next read sees it
    assert cache.get() == ["黑金卡"]

    # when it is deleted
    tier.delete()
    # then too
    assert cache.get() == []


def test_saving_a_model_that_is_not_watched_keeps_the_value(caching_on, make_cache):
    # given
    load, calls = counting(tier_names)
    cache = make_cache(ProcessCache, load, watch=(Tier,))
    cache.get()
    # when
    StoreFactory().save()
    cache.get()
    # then
    assert len(calls) == 1


def test_a_queryset_update_sends_no_signal_so_the_value_stands_until_cleared(caching_on, make_cache):
    # given
    Tier.objects.create(code="gold", name="金卡", rank=1)
    cache = make_cache(ProcessCache, tier_names, watch=(Tier,))
    cache.get()
    # when
    Tier.objects.update(name="黑金卡")
    # then the cached value stands (what other processes see for the TTL) until it is cleared
    assert cache.get() == ["金卡"]
    cache.clear()
    assert cache.get() == ["黑金卡"]


def test_a_load_that_creates_the_loyalty_program_does_not_keep_that_value(
    caching_on, empty_caches, django_assert_num_queries
):
    # given no program row yet: the first read creates it (get_or_create saves a watched row)
    LoyaltyProgram.objects.all().delete()
    cache = points._cached_program
    # when
    first = cache.get()
    LoyaltyProgram.objects.update(points_per_yuan=Decimal("3.00"))  # no signal: only a reload sees it
    with django_assert_num_queries(1):
        second = cache.get()
    LoyaltyProgram.objects.update(points_per_yuan=Decimal("5.00"))
    with django_assert_num_queries(0):
        third = cache.get()
    # then the value loaded while the row was created was not kept; the next one was
    assert LoyaltyProgram.objects.count() == 1
    assert first.points_per_yuan == Decimal("1.00")
    assert second.points_per_yuan == Decimal("3.00")
    assert third is second


def test_a_value_is_loaded_again_once_the_ttl_has_passed(caching_on, make_cache, clock):
    # given a value loaded now
    load, calls = counting(object)
    cache = make_cache(ProcessCache, load)
    first = cache.get()
    # when exactly the TTL has passed
    clock.advance(TTL)
    # then it is still kept
    assert cache.get() is first
    assert len(calls) == 1

    # when a moment more has passed
    clock.advance(0.01)
    second = cache.get()
    # then it is loaded again, and kept for another TTL from then
    assert second is not first
    clock.advance(TTL - 1)
    assert cache.get() is second
    assert len(calls) == 2


# --- KeyedProcessCache -----------------------------------------------------------------------


def test_a_keyed_cache_loads_each_key_once_within_the_ttl(caching_on, make_cache):
    # given
    load, calls = counting(lambda key: key.upper())
    cache = make_cache(KeyedProcessCache, load)
    # when
    values = [cache.get("a"), cache.get("b"), cache.get("a"), cache.get("b")]
    # then
    assert values == ["A", "B", "A", "B"]
    assert calls == [("a",), ("b",)]


def test_a_keyed_cache_with_a_ttl_of_zero_loads_every_time(settings, make_cache):
    # given
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = 0
    load, calls = counting(lambda key: key.upper())
    cache = make_cache(KeyedProcessCache, load)
    # when
    cache.get("a")
    cache.get("a")
    # then
    assert calls == [("a",), ("a",)]


def test_a_keyed_cache_never_keeps_none(caching_on, make_cache):
    # given a key that finds nothing yet
    found: dict[str, str] = {}
    load, calls = counting(found.get)
    cache = make_cache(KeyedProcessCache, load)
    # when
    misses = [cache.get("k"), cache.get("k")]
    found["k"] = "value"
    hit = cache.get("k")
    # then every miss asked again, and the value found later is returned at once
    assert misses == [None, None]
    assert hit == "value"
    assert calls == [("k",), ("k",), ("k",)]


def test_a_keyed_cache_is_emptied_when_full(caching_on, make_cache):
    # given a cache of two entries, full
    load, calls = counting(lambda key: key.upper())
    cache = make_cache(KeyedProcessCache, load, max_entries=2)
    cache.get("a")
    cache.get("b")
    # when a third key comes
    cache.get("c")
    # then the old entries were dropped and the new one kept
    cache.get("c")
    assert calls == [("a",), ("b",), ("c",)]
    cache.get("a")
    cache.get("b")
    assert calls == [("a",), ("b",), ("c",), ("a",), ("b",)]


def test_a_keyed_cache_is_cleared_when_a_watched_model_is_saved_or_deleted(caching_on, make_cache):
    # given a cached store name
    store = StoreFactory(code="S900", name="静安店")
    cache = make_cache(
        KeyedProcessCache,
        lambda code: Store.objects.filter(code=code).values_list("name", flat=True).first(),
        watch=(Store,),
    )
    assert cache.get("S900") == "静安店"

    # when the store is renamed
    store.name = "静安旗舰店"
    store.save()
    # then
    assert cache.get("S900") == "静安旗舰店"

    # when it is deleted
    store.delete()
    # then
    assert cache.get("S900") is None


def test_a_keyed_load_that_saves_a_watched_row_does_not_keep_its_value(caching_on, make_cache):
    # given a load that saves a watched row while it loads
    store = StoreFactory()

    def load(key: str) -> str:
        store.save()
        return key.upper()

    load, calls = counting(load)
    cache = make_cache(KeyedProcessCache, load, watch=(Store,))
    # when
    cache.get("a")
    cache.get("a")
    # then
    assert calls == [("a",), ("a",)]


def test_a_keyed_value_is_loaded_again_once_the_ttl_has_passed(caching_on, make_cache, clock):
    # given
    load, calls = counting(lambda key: object())
    cache = make_cache(KeyedProcessCache, load)
    first = cache.get("a")
    # when
    clock.advance(TTL)
    kept = cache.get("a")
    clock.advance(0.01)
    reloaded = cache.get("a")
    # then
    assert kept is first
    assert reloaded is not first
    assert calls == [("a",), ("a",)]


# --- end to end: store API keys --------------------------------------------------------------


@pytest.fixture
def api_key(empty_caches):
    store = StoreFactory()
    key, raw = store_api_key_create(store=store, name="POS 1", scopes=["orders"])
    return key, raw


def test_a_store_api_key_is_looked_up_once_while_caching_is_on(caching_on, api_key, django_assert_num_queries):
    # given
    key, raw = api_key
    # when
    first = store_api_key_find(raw_key=raw)
    with django_assert_num_queries(0):
        again = store_api_key_find(raw_key=raw)
    # then
    assert first.pk == key.pk
    assert again is first


def test_a_key_deactivated_by_the_service_is_refused_at_once(caching_on, api_key):
    # given a key found (and so cached) in this process
    key, raw = api_key
    assert store_api_key_find(raw_key=raw).pk == key.pk
    # when
    store_api_key_deactivate(api_key=key)
    # then
    assert store_api_key_find(raw_key=raw) is None
    assert StoreApiKey.objects.get(pk=key.pk).is_active is False


def test_a_key_deactivated_by_saving_the_row_is_refused_at_once(caching_on, api_key):
    # given
    key, raw = api_key
    assert store_api_key_find(raw_key=raw).pk == key.pk
    # when an operator saves the key through the ORM (the admin)
    row = StoreApiKey.objects.get(pk=key.pk)
    row.is_active = False
    row.save()
    # then
    assert store_api_key_find(raw_key=raw) is None


def test_a_store_deactivated_by_saving_the_row_refuses_its_keys_at_once(caching_on, api_key):
    # given
    key, raw = api_key
    assert store_api_key_find(raw_key=raw).pk == key.pk
    # when
    store = Store.objects.get(pk=key.store_id)
    store.is_active = False
    store.save()
    # then
    assert store_api_key_find(raw_key=raw) is None


def test_a_key_that_was_not_found_is_looked_up_again(caching_on, api_key):
    # given a key refused while inactive (changed without a signal, as by another process)
    key, raw = api_key
    StoreApiKey.objects.filter(pk=key.pk).update(is_active=False)
    assert store_api_key_find(raw_key=raw) is None
    # when it is active again
    StoreApiKey.objects.filter(pk=key.pk).update(is_active=True)
    # then the refusal was not kept
    assert store_api_key_find(raw_key=raw).pk == key.pk
