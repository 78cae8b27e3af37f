"""Realistic, reproducible demo data: stores, members, orders and refunds of a tea and coffee chain.

Everything comes from one ``random.Random(seed)`` and the as-of date, consumed in a fixed order, so
the same arguments always give the same mobiles, names, amounts, dates and external ids. This
module knows nothing about the database: it describes rows by position (member 0 … N-1, order
0 … M-1, store 0 … S-1); ``seed_demo`` turns positions into ids and writes them in bulk.

The shape the data has, because segmentation and the demos need it:

* about a dozen stores in six cities, a few opened during the period and two closed;
* registrations growing over two years, with more mini-program sign-ups as time goes on;
* common surnames as frequent as in reality, valid and unique mainland mobile numbers;
* purchase frequency with a long tail (a log-normal propensity times the member's active span,
  plus a group of one-time "tryers"), about a sixth of members who never buy, churned members whose
  last order is months old, and new members who have only just started;
* seasonality: the Spring Festival dip, a summer peak, the 618 and Double 11 spikes, busy weekends,
  order times within shop hours with lunch and afternoon-tea peaks;
* amounts log-normal around ¥30–60 with a long tail (group orders, and a few members who order
  rarely but for a whole team), in whole cents;
* about 2% of orders refunded, fully or in part.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from zoneinfo import ZoneInfo

from members.referral_codes import ALPHABET as REFERRAL_ALPHABET
from members.referral_codes import LENGTH as REFERRAL_LENGTH

HISTORY_DAYS = 730  # registrations spread over about two years before the as-of date
SECONDS_PER_DAY = 86_400

ORDER_EXTERNAL_ID = "DEMO-S-{:09d}"
REFUND_EXTERNAL_ID = "DEMO-R-{:09d}"

# Model choice values (``Member.Gender`` / ``Member.Channel`` / ``Order.Status``), kept as plain
# strings so this module stays free of Django imports.
FEMALE, MALE, UNKNOWN = "female", "male", "unknown"
STORE, MINI_PROGRAM, OFFICIAL_ACCOUNT, POS = "store", "mini_program", "official_account", "pos"
PAID, PARTIALLY_REFUNDED, REFUNDED = "paid", "partially_refunded", "refunded"


# --- stores -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoStore:
    code: str
    name: str
    city: str
    weight: float  # relative size: share of registrations and of walk-in orders
    opened_days_ago: int  # before the as-of date; more than HISTORY_DAYS means open all along
    closed_days_ago: int | None = None  # inactive stores closed this many days before the as-of date

    @property
    def is_active(self) -> bool:
        return self.closed_days_ago is None


STORES: tuple[DemoStore, ...] = (
    DemoStore("SH001", "静安寺店", "上海", 1.6, 1500),
    DemoStore("SH002", "徐家汇店", "上海", 1.3, 1200),
    DemoStore("SH003", "陆家嘴店", "上海", 1.2, 1000),
    DemoStore("SH004", "中山公园店", "上海", 0.8, 1100, closed_days_ago=150),
    DemoStore("BJ001", "三里屯店", "北京", 1.3, 1000),
    DemoStore("BJ002", "国贸店", "北京", 1.1, 900),
    DemoStore("BJ003", "五道口店", "北京", 0.7, 950, closed_days_ago=70),
    DemoStore("HZ001", "西湖银泰店", "杭州", 1.0, 1000),
    DemoStore("HZ002", "滨江星光店", "杭州", 0.7, 300),
    DemoStore("SZ001", "海岸城店", "深圳", 1.0, 420),
    DemoStore("CD001", "春熙路店", "成都", 1.0, 800),
    DemoStore("GZ001", "天河城店", "广州", 0.9, 110),
)

# --- people -----------------------------------------------------------------------------------
# Surname shares (per cent) close to the national statistics: 王 李 张 刘 陈 lead by far.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.1), ("陈", 4.6), ("杨", 3.2), ("黄", 2.5),
    ("赵", 2.2), ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.4), ("马", 1.3), ("朱", 1.3),
    ("胡", 1.2), ("郭", 1.1), ("何", 1.1), ("林", 1.0), ("高", 1.0), ("罗", 1.0), ("郑", 0.9),
    ("梁", 0.9), ("谢", 0.7), ("宋", 0.6), ("唐", 0.6), ("许", 0.6), ("韩", 0.6), ("冯", 0.6),
    ("邓", 0.6), ("曹", 0.5), ("彭", 0.5), ("曾", 0.5), ("肖", 0.5), ("田", 0.4), ("董", 0.4),
    ("袁", 0.4), ("潘", 0.4), ("于", 0.4), ("蒋", 0.4), ("蔡", 0.4), ("余", 0.4), ("杜", 0.4),
    ("叶", 0.4), ("程", 0.4), ("苏", 0.4), ("魏", 0.4), ("吕", 0.3), ("丁", 0.3), ("任", 0.3),
    ("沈", 0.3), ("姚", 0.3), ("卢", 0.3), ("姜", 0.3), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.3), ("廖", 0.3), ("贾", 0.3),
    ("夏", 0.2), ("韦", 0.2), ("付", 0.2), ("方", 0.2), ("白", 0.2), ("邹", 0.2), ("孟", 0.2),
    ("熊", 0.2), ("秦", 0.2), ("邱", 0.2), ("江", 0.2), ("尹", 0.2), ("薛", 0.2), ("闫", 0.2),
    ("段", 0.2), ("雷", 0.2), ("侯", 0.2), ("龙", 0.2), ("史", 0.2), ("陶", 0.2), ("黎", 0.2),
    ("贺", 0.2), ("顾", 0.2), ("毛", 0.2), ("郝", 0.2), ("龚", 0.2), ("邵", 0.2), ("万", 0.2),
    ("钱", 0.2), ("严", 0.2), ("武", 0.2), ("戴", 0.2), ("莫", 0.1), ("孔", 0.1), ("向", 0.1),
    ("汤", 0.1), ("欧阳", 0.03), ("上官", 0.01), ("司马", 0.01), ("诸葛", 0.01),
)  # fmt: skip
FEMALE_GIVEN = "静丽敏燕艳娟霞芳娜婷雪琳慧颖欣怡梦雨佳晶倩玲洁璐萱涵瑶悦思嘉诗雅紫馨可如月蕾薇菲琪晴岚"
MALE_GIVEN = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳晨博文轩睿泽然天志建峰"
NEUTRAL_GIVEN = "子一安乐晨嘉欣宇文明佳清诚若云"

# Mainland mobile prefixes in use, weighted roughly by how many numbers each carries.
MOBILE_PREFIXES: tuple[tuple[str, int], ...] = (
    ("130", 2), ("131", 2), ("132", 2), ("133", 2), ("134", 2), ("135", 4), ("136", 4), ("137", 4),
    ("138", 5), ("139", 5), ("150", 3), ("151", 3), ("152", 3), ("153", 2), ("155", 2), ("156", 2),
    ("157", 2), ("158", 4), ("159", 4), ("166", 2), ("170", 1), ("171", 1), ("173", 1), ("175", 1),
    ("176", 2), ("177", 2), ("178", 1), ("180", 2), ("181", 2), ("182", 2), ("183", 2), ("184", 1),
    ("185", 2), ("186", 3), ("187", 3), ("188", 3), ("189", 3), ("191", 1), ("193", 1), ("195", 1),
    ("196", 1), ("197", 1), ("198", 2), ("199", 2),
)  # fmt: skip
OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
OPENID_PREFIX = "oX7dq"  # a mini-program's openids share their first characters

# --- calendar ---------------------------------------------------------------------------------
SPRING_FESTIVAL = tuple(
    dt.date.fromisoformat(day)
    for day in (
        "2015-02-19", "2016-02-08", "2017-01-28", "2018-02-16", "2019-02-05", "2020-01-25",
        "2021-02-12", "2022-02-01", "2023-01-22", "2024-02-10", "2025-01-29", "2026-02-17",
        "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-03", "2031-01-23", "2032-02-11",
        "2033-01-31", "2034-02-19", "2035-02-08", "2036-01-28", "2037-02-15", "2038-02-04",
        "2039-01-24", "2040-02-12",
    )
)  # fmt: skip
WEEKDAY_FACTOR = (0.92, 0.92, 0.95, 0.97, 1.08, 1.30, 1.22)  # Monday … Sunday
MONTH_FACTOR = (0.85, 0.82, 0.92, 1.00, 1.08, 1.20, 1.32, 1.30, 1.12, 1.00, 0.95, 0.90)  # tea sells in summer
# Order times: shop hours 08:00–22:00 with lunch and afternoon-tea peaks (weight per hour).
HOUR_WEIGHTS = {8: 3, 9: 5, 10: 6, 11: 9, 12: 12, 13: 11, 14: 10, 15: 11, 16: 10, 17: 8, 18: 7, 19: 8, 20: 7, 21: 4}
ONLINE_HOUR_WEIGHTS = {**HOUR_WEIGHTS, 7: 2, 22: 4, 23: 2}  # the mini-program never closes

# --- behaviour --------------------------------------------------------------------------------
CHANNEL_NEVER_BUYS = {STORE: 0.08, POS: 0.06, MINI_PROGRAM: 0.20, OFFICIAL_ACCOUNT: 0.35}
CHANNEL_FIRST_ORDER_AT_SIGN_UP = {STORE: 0.9, POS: 0.95, MINI_PROGRAM: 0.35, OFFICIAL_ACCOUNT: 0.1}
TRYER_SHARE = 0.35  # buyers who try once or twice and rarely come back
BIG_TICKET_SHARE = 0.05  # buyers who rarely order, but for a whole team
CHURN_SHARE = 0.35  # buyers (registered long enough ago) who stop buying at some point
REFERRED_SHARE = 0.05
HOME_STORE_SHARE = 0.85
REFUND_SHARE = 0.02
FULL_REFUND_SHARE = 0.55
FULL_REFUND_REASONS = ("顾客取消订单", "饮品制作有误", "商品售罄", "外卖配送超时", "重复下单")
PARTIAL_REFUND_REASONS = ("部分商品售罄", "少做一杯", "口味不满意，部分退款", "优惠补差")
DISCOUNTS = (0.8, 0.85, 0.88, 0.9, 0.95)


@dataclass(slots=True)
class DemoMember:
    """One member, by position: ``index`` orders members by registration (earliest first)."""

    index: int
    mobile: str
    name: str
    gender: str
    birthday: dt.date | None
    registered_day: int  # day number in the calendar (0 = first day of the history)
    registered_second: int  # seconds after local midnight
    channel: str
    home_store: int  # index into STORES
    openid: str | None
    referral_code: str
    referrer: int | None  # index of an earlier member
    # behaviour, used to generate the orders
    weight: float = 0.0
    first_day: int = 0
    last_day: int = 0
    spend: float = 1.0
    first_order_at_sign_up: bool = False
    order_count: int = 0


@dataclass(slots=True)
class DemoOrder:
    number: int  # 0 … M-1, in the order orders are generated; the external id is derived from it
    member: int
    store: int
    day: int
    second: int
    cents: int
    refunded_cents: int = 0

    @property
    def external_id(self) -> str:
        return ORDER_EXTERNAL_ID.format(self.number + 1)

    @property
    def status(self) -> str:
        if not self.refunded_cents:
            return PAID
        return REFUNDED if self.refunded_cents == self.cents else PARTIALLY_REFUNDED


@dataclass(slots=True)
class DemoRefund:
    number: int
    order: int  # order number
    cents: int
    day: int
    second: int
    reason: str

    @property
    def external_id(self) -> str:
        return REFUND_EXTERNAL_ID.format(self.number + 1)


@dataclass
class DemoCalendar:
    """The days of the history, their local midnights and how busy each one is."""

    as_of: dt.date
    tz: ZoneInfo
    dates: list[dt.date] = field(init=False)
    midnights: list[dt.datetime] = field(init=False)
    order_cum_weights: list[float] = field(init=False)
    sign_up_cum_weights: list[float] = field(init=False)
    promotion_days: frozenset[int] = field(init=False)

    def __post_init__(self):
        start = self.as_of - dt.timedelta(days=HISTORY_DAYS)
        self.dates = [start + dt.timedelta(days=n) for n in range(HISTORY_DAYS + 1)]
        self.midnights = [self._midnight(day) for day in self.dates]
        order_weights, sign_up_weights, promotions = [], [], set()
        for number, day in enumerate(self.dates):
            busy, promotion = _day_factor(day)
            if promotion:
                promotions.add(number)
            order_weights.append(busy)
            growth = math.exp(1.1 * number / HISTORY_DAYS)  # the brand grows: ×3 over two years
            sign_up_weights.append(growth * (busy * 1.6 if promotion else busy))
        self.order_cum_weights = list(accumulate(order_weights))
        self.sign_up_cum_weights = list(accumulate(sign_up_weights))
        self.promotion_days = frozenset(promotions)

    @property
    def last_day(self) -> int:
        return HISTORY_DAYS

    def _midnight(self, day: dt.date) -> dt.datetime:
        # A fixed offset per day, taken at noon: exact during shop hours even where clocks change.
        offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=self.tz).utcoffset()
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone(offset))

    def moment(self, day: int, second: int) -> dt.datetime:
        return self.midnights[day] + dt.timedelta(seconds=second)


def _day_factor(day: dt.date) -> tuple[float, bool]:
    """How busy ``day`` is relative to an ordinary day, and whether it is a shopping festival."""
    factor = WEEKDAY_FACTOR[day.weekday()] * MONTH_FACTOR[day.month - 1]
    promotion = False
    for festival in SPRING_FESTIVAL:
        offset = (day - festival).days
        if -10 <= offset <= 14:  # people travel home; shops close or run short hours
            factor *= 0.75 if offset < -3 else 0.45 if offset < 0 else 0.35 if offset < 7 else 0.7
            break
    month_day = (day.month, day.day)
    if month_day == (6, 18) or month_day == (11, 11):
        factor *= 2.7
        promotion = True
    elif month_day == (12, 12):
        factor *= 1.6
        promotion = True
    elif month_day in ((6, 17), (11, 10)):
        factor *= 1.4
    elif (day.month == 6 and day.day < 17) or (day.month == 11 and day.day < 10):
        factor *= 1.1  # pre-sales
    elif month_day == (5, 20) or month_day == (12, 24):
        factor *= 1.4  # "520" and Christmas Eve: drinks for two
    elif day.month == 10 and day.day <= 7:
        factor *= 0.85  # National Day golden week: office districts empty out
    return factor, promotion


def _second_pool(hour_weights: dict[int, int]) -> list[int]:
    """Minutes of the day (as seconds after midnight), each repeated by its hour's weight."""
    return [
        hour * 3600 + minute * 60
        for hour, weight in sorted(hour_weights.items())
        for minute in range(60)
        for _ in range(weight)
    ]


SHOP_SECONDS = _second_pool(HOUR_WEIGHTS)
ONLINE_SECONDS = _second_pool(ONLINE_HOUR_WEIGHTS)


class DemoData:
    """Generates one data set. Call ``members()`` once, then iterate ``orders()``."""

    def __init__(self, *, members: int, orders: int, seed: int, as_of: dt.date, tz: ZoneInfo):
        if members < 0 or orders < 0:
            raise ValueError("members and orders must not be negative")
        if orders and not members:
            raise ValueError("orders need at least one member")
        self.member_count = members
        self.order_count = orders
        self.rng = random.Random(seed)  # noqa: S311 (demo data, reproducible by design)
        self.calendar = DemoCalendar(as_of=as_of, tz=tz)
        self.stores = STORES
        self._members: list[DemoMember] | None = None
        self._open_stores = self._open_stores_by_day()
        self.refund_count = 0

    # --- stores -------------------------------------------------------------------------------
    def store_opened_at(self, store: DemoStore) -> dt.datetime:
        day = self.calendar.as_of - dt.timedelta(days=store.opened_days_ago)
        return dt.datetime(day.year, day.month, day.day, 9, tzinfo=self.calendar.tz)

    def _store_open(self, store: DemoStore, day: int) -> bool:
        opened = HISTORY_DAYS - store.opened_days_ago
        closed = None if store.closed_days_ago is None else HISTORY_DAYS - store.closed_days_ago
        return opened <= day and (closed is None or day < closed)

    def _open_stores_by_day(self) -> list[tuple[tuple[int, ...], dict[str, tuple[int, ...]], list[float]]]:
        """Per day: the open stores, the open stores per city, and cumulative size weights."""
        by_day, shared = [], {}
        for day in range(HISTORY_DAYS + 1):
            open_now = tuple(n for n, store in enumerate(self.stores) if self._store_open(store, day))
            if open_now not in shared:
                cities: dict[str, tuple[int, ...]] = {}
                for n in open_now:
                    cities[self.stores[n].city] = (*cities.get(self.stores[n].city, ()), n)
                shared[open_now] = (open_now, cities, list(accumulate(self.stores[n].weight for n in open_now)))
            by_day.append(shared[open_now])
        return by_day

    # --- members ------------------------------------------------------------------------------
    def members(self) -> list[DemoMember]:
        """All members, earliest registration first, with their order counts allocated."""
        if self._members is None:
            self._members = self._generate_members()
            self._allocate_orders(self._members)
        return self._members

    def _generate_members(self) -> list[DemoMember]:
        rng, calendar = self.rng, self.calendar
        n = self.member_count
        days = rng.choices(range(HISTORY_DAYS + 1), cum_weights=calendar.sign_up_cum_weights, k=n)
        moments = sorted((day, rng.random()) for day in days)
        surnames = [s for s, _ in SURNAMES]
        surname_cum = list(accumulate(w for _, w in SURNAMES))
        prefixes = [p for p, _ in MOBILE_PREFIXES]
        prefix_cum = list(accumulate(w for _, w in MOBILE_PREFIXES))
        mobiles: set[str] = set()
        codes: set[str] = set()
        openids: set[str] = set()
        referrer_cum: list[float] = []
        members = []
        previous_day, earlier = -1, 0  # members registered on an earlier day: those who can refer
        for index, (day, time_draw) in enumerate(moments):
            if day != previous_day:
                previous_day, earlier = day, index
            channel = self._channel(day / HISTORY_DAYS)
            referrer = None
            if earlier and rng.random() < REFERRED_SHARE:
                referrer = min(bisect_right(referrer_cum, rng.random() * referrer_cum[earlier - 1]), earlier - 1)
                if rng.random() < 0.8:
                    channel = MINI_PROGRAM  # referral links open the mini-program
            pool = ONLINE_SECONDS if channel in (MINI_PROGRAM, OFFICIAL_ACCOUNT) else SHOP_SECONDS
            second = min(pool[int(time_draw * len(pool))] + rng.randrange(60), 23 * 3600 + 30 * 60)
            gender = rng.choices((FEMALE, MALE, UNKNOWN), (0.6, 0.34, 0.06))[0]
            member = DemoMember(
                index=index,
                mobile=self._unique(
                    mobiles, lambda: rng.choices(prefixes, cum_weights=prefix_cum)[0] + f"{rng.randrange(10**8):08d}"
                ),
                name=self._name(gender, surnames, surname_cum),
                gender=gender,
                birthday=self._birthday(),
                registered_day=day,
                registered_second=second,
                channel=channel,
                home_store=self._sign_up_store(day),
                openid=self._unique(openids, self._openid) if channel == MINI_PROGRAM else None,
                referral_code=self._unique(codes, lambda: "".join(rng.choices(REFERRAL_ALPHABET, k=REFERRAL_LENGTH))),
                referrer=referrer,
            )
            self._behaviour(member)
            members.append(member)
            # Members who buy a lot bring in more friends.
            referrer_cum.append((referrer_cum[-1] if referrer_cum else 0.0) + 0.2 + member.weight)
        return members

    @staticmethod
    def _unique(seen: set[str], make) -> str:
        while (value := make()) in seen:
            pass
        seen.add(value)
        return value

    def _channel(self, progress: float) -> str:
        mini = 0.28 + 0.24 * progress  # the mini-program takes over from the till
        pos = 0.13 - 0.05 * progress
        official = 0.15
        return self.rng.choices(
            (MINI_PROGRAM, POS, OFFICIAL_ACCOUNT, STORE), (mini, pos, official, 1 - mini - pos - official)
        )[0]

    def _name(self, gender: str, surnames: list[str], surname_cum: list[float]) -> str:
        rng = self.rng
        if rng.random() < 0.04:
            return ""  # signed up without a name
        surname = surnames[bisect_right(surname_cum, rng.random() * surname_cum[-1])]
        pool = FEMALE_GIVEN if gender == FEMALE else MALE_GIVEN if gender == MALE else FEMALE_GIVEN + MALE_GIVEN
        pool += NEUTRAL_GIVEN
        given = rng.choice(pool)
        if rng.random() < 0.72:
            given += rng.choice(pool)
        return surname + given

    def _birthday(self) -> dt.date | None:
        rng = self.rng
        if rng.random() < 0.15:
            return None
        age = min(70, 16 + int(rng.gammavariate(2.2, 5.5)))  # mostly 20–40, tea drinkers are young
        year = self.calendar.as_of.year - age
        return dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))

    def _openid(self) -> str:
        return OPENID_PREFIX + "".join(self.rng.choices(OPENID_ALPHABET, k=28 - len(OPENID_PREFIX)))

    def _sign_up_store(self, day: int) -> int:
        open_now, _, cum = self._open_stores[day]
        return open_now[bisect_right(cum, self.rng.random() * cum[-1])]

    def _behaviour(self, member: DemoMember) -> None:
        """Decide whether, how much, how long and how lavishly the member buys."""
        rng = self.rng
        last = HISTORY_DAYS
        if rng.random() < CHANNEL_NEVER_BUYS[member.channel]:
            member.weight = 0.0
            return
        weight = rng.lognormvariate(0.0, 1.0)
        spend = rng.lognormvariate(0.0, 0.3)
        draw = rng.random()
        if draw < TRYER_SHARE:
            weight *= 0.03
        elif draw < TRYER_SHARE + BIG_TICKET_SHARE:
            weight *= 0.08
            spend *= 10.0 + 8.0 * rng.random()  # orders for the whole office, a few times a year
        start = member.registered_day
        end = last
        home = self.stores[member.home_store]
        if home.closed_days_ago is not None and rng.random() < 0.5:
            end = min(end, HISTORY_DAYS - home.closed_days_ago + rng.randrange(-30, 10))
        if start < last - 120 and rng.random() < CHURN_SHARE:
            end = min(end, start + int(rng.random() * (last - 60 - start)))
        end = max(start, min(end, last))
        member.weight = weight
        member.first_day, member.last_day = start, end
        member.spend = spend
        member.first_order_at_sign_up = rng.random() < CHANNEL_FIRST_ORDER_AT_SIGN_UP[member.channel]

    def _allocate_orders(self, members: list[DemoMember]) -> None:
        """Share exactly M orders out: one per buyer, the rest by weight × active days (capped)."""
        rng, total = self.rng, self.order_count
        if not total:
            return
        buyers = [m for m in members if m.weight > 0]
        if not buyers:  # tiny data sets: someone has to buy
            buyers = members
            for m in buyers:
                self._make_buyer(m)
        if total < len(buyers):
            buyers = sorted(rng.sample(buyers, total), key=lambda m: m.index)
        for m in buyers:
            m.order_count = 1
        rest = total - len(buyers)
        if not rest:
            return
        spans = [m.last_day - m.first_day + 1 for m in buyers]
        caps = [int(span * 1.2) + 1 for span in spans]  # nobody buys more than about once a day
        if sum(caps) < rest:
            caps = [cap * math.ceil(rest / sum(caps)) for cap in caps]
        extra = [0] * len(buyers)
        active = list(range(len(buyers)))
        while rest:
            cum = list(accumulate(buyers[i].weight * spans[i] for i in active))
            chosen = range(len(active))
            while rest:
                k = min(rest, 65_536)
                for pick in rng.choices(chosen, cum_weights=cum, k=k):
                    extra[active[pick]] += 1
                rest -= k
            still_open = []
            for i in active:
                if extra[i] > caps[i]:
                    rest += extra[i] - caps[i]
                    extra[i] = caps[i]
                elif extra[i] < caps[i]:
                    still_open.append(i)
            active = still_open
        for m, more in zip(buyers, extra, strict=True):
            m.order_count += more

    def _make_buyer(self, member: DemoMember) -> None:
        member.weight = self.rng.lognormvariate(0.0, 1.0)
        member.first_day, member.last_day = member.registered_day, HISTORY_DAYS
        member.spend = 1.0

    # --- orders -------------------------------------------------------------------------------
    def orders(self) -> Iterator[tuple[DemoMember, list[DemoOrder], list[DemoRefund]]]:
        """Each member in turn with their orders (oldest first) and the refunds of those orders."""
        number = 0
        refund_number = 0
        for member in self.members():
            orders = self._orders_of(member, number) if member.order_count else []
            number += len(orders)
            refunds = []
            for order in orders:
                if self.rng.random() < REFUND_SHARE:
                    refunds.append(self._refund(order, refund_number))
                    refund_number += 1
            self.refund_count = refund_number
            yield member, orders, refunds

    def _orders_of(self, member: DemoMember, first_number: int) -> list[DemoOrder]:
        rng = self.rng
        rand, gauss = rng.random, rng.gauss
        cum = self.calendar.order_cum_weights
        promotions = self.calendar.promotion_days
        shop_seconds, n_seconds = SHOP_SECONDS, len(SHOP_SECONDS)
        open_stores = self._open_stores
        start, end = member.first_day, member.last_day
        low = cum[start - 1] if start else 0.0
        width = cum[end] - low
        home, city = member.home_store, self.stores[member.home_store].city
        sign_up_day, sign_up_second = member.registered_day, member.registered_second
        log_median = math.log(36.0 * member.spend)

        moments = []
        count = member.order_count
        if member.first_order_at_sign_up:
            moments.append((sign_up_day, min(sign_up_second + rng.randrange(30, 600), SECONDS_PER_DAY - 1)))
            count -= 1
        for _ in range(count):
            day = min(bisect_right(cum, low + rand() * width), end)
            second = shop_seconds[int(rand() * n_seconds)] + int(rand() * 60)
            if day == sign_up_day and second < sign_up_second:
                second = min(sign_up_second + 60 + int(rand() * 3600), SECONDS_PER_DAY - 1)
            moments.append((day, second))
        moments.sort()

        orders = []
        for offset, (day, second) in enumerate(moments):
            open_now, cities, store_cum = open_stores[day]
            draw = rand()
            if draw < HOME_STORE_SHARE and home in open_now:
                store = home
            elif draw < 0.97 and cities.get(city):
                nearby = cities[city]
                store = nearby[int(rand() * len(nearby))]
            else:
                store = open_now[bisect_right(store_cum, rand() * store_cum[-1])]
            yuan = math.exp(log_median + 0.42 * gauss(0.0, 1.0))
            if rand() < 0.06:
                yuan *= 2.5 + 3.5 * rand()  # a group order for the office
            if day in promotions:
                yuan *= 1.25  # festival bundles
            yuan = min(max(yuan, 6.0), 2000.0)
            cents = round(yuan) * 100 if rand() < 0.3 else round(yuan * 10) * 10
            if rand() < 0.2:
                cents = int(cents * DISCOUNTS[int(rand() * len(DISCOUNTS))])  # member discount: odd cents
            orders.append(DemoOrder(first_number + offset, member.index, store, day, second, max(cents, 1)))
        return orders

    def _refund(self, order: DemoOrder, number: int) -> DemoRefund:
        rng = self.rng
        if order.cents < 2 or rng.random() < FULL_REFUND_SHARE:
            cents, reason = order.cents, rng.choice(FULL_REFUND_REASONS)
        else:
            cents = min(order.cents - 1, max(1, int(order.cents * (0.1 + 0.5 * rng.random()))))
            reason = rng.choice(PARTIAL_REFUND_REASONS)
        order.refunded_cents = cents
        if rng.random() < 0.7:  # at the counter, minutes after paying
            moment = order.day * SECONDS_PER_DAY + order.second + rng.randrange(120, 1800)
        else:  # a complaint handled a day or three later, during shop hours
            second = SHOP_SECONDS[int(rng.random() * len(SHOP_SECONDS))] + rng.randrange(60)
            moment = (order.day + rng.randrange(1, 4)) * SECONDS_PER_DAY + second
        moment = min(moment, HISTORY_DAYS * SECONDS_PER_DAY + SECONDS_PER_DAY - 1)  # never after the as-of date
        return DemoRefund(number, order.number, cents, moment // SECONDS_PER_DAY, moment % SECONDS_PER_DAY, reason)
