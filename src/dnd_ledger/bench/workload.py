"""A synthetic, reproducible consent workload.

Contacts live in a few locations, each with a phone number and an email address
(a few share a phone, as families do). The stream mixes what a CRM sees:
inbound STOP/START/other messages (SMS and WhatsApp), Twilio status callbacks
(contact-side error codes, sender-side codes and plain deliveries), Mailgun
failures, complaints and unsubscribes, users setting and clearing DND (some
clears are refused: permanent DND), a few support opt-ins, new contacts
registering, exact re-deliveries (same idempotency key) and late webhooks whose
``occurred_at`` lies before events already recorded.

Every item carries the command for the ledger and what a plain CRUD table would
do for it (:class:`Crud`): update the contact's flag row and add an audit row.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dnd_ledger import commands as cmd
from dnd_ledger.domain.values import Channel, EmailSignal

#: Share of each kind of item in the stream (they add up to 100).
MIX: dict[str, float] = {
    "register": 4,
    "inbound-stop": 7,
    "inbound-start": 5,
    "inbound-revocation": 3,
    "inbound-other": 18,
    "carrier-temporary": 9,
    "carrier-permanent": 3,
    "carrier-whatsapp": 1,
    "carrier-sender-side": 5,
    "carrier-delivered": 6,
    "mailgun-failed-permanent": 6,
    "mailgun-failed-temporary": 3,
    "mailgun-complained": 2,
    "mailgun-unsubscribed": 2,
    "user-set": 9,
    "user-clear": 8,
    "support-opt-in": 1,
    "duplicate": 8,
}
#: Share of (non-duplicate) items whose occurred_at lies in the past of the stream.
LATE_SHARE = 0.05
SHARED_PHONE_SHARE = 0.02

STOP_BODIES = ("STOP", "Stop", "stop", "STOP ", "Unsubscribe", "STOPALL", "cancel", "Quit")
START_BODIES = ("START", "Start", "start ")
REVOCATION_BODIES = (
    "please stop texting me",
    "Can you stop sending these?",
    "how do I unsubscribe from this",
    "I want to opt out of the reminders",
)
OTHER_BODIES = (
    "Thanks, see you at 3pm",
    "Can you call me back?",
    "Yes",
    "Is the shop open on Sunday?",
    "HELP",
    "ok",
    "Running 10 minutes late, sorry",
    "What is the price for the premium plan?",
)
TEMPORARY_CODES = (30003, 30005, 30006)
PERMANENT_CODES = (30004, 21610)
SENDER_SIDE_CODES = (30007, 30032, 30034, 21408, 30008)
PERMANENT_FAILURE_REASONS = (
    "bounce",
    "generic",
    "suppress-bounce",
    "suppress-complaint",
    "suppress-unsubscribe",
    "old",
)
USER_CHANNELS = (
    Channel.EMAIL,
    Channel.SMS,
    Channel.CALL,
    Channel.FB,
    Channel.GMB,
    Channel.WHATSAPP,
)
ACTORS = ("alice", "bob", "carol", "dan")
AREA_CODES = ("212", "312", "415", "503", "617", "646", "702", "718", "805", "917")


@dataclass(frozen=True)
class Person:
    location_id: str
    contact_id: str
    phone: str
    email: str


@dataclass(frozen=True)
class Crud:
    """What a plain CRUD table does for the same item: one UPDATE, one audit INSERT."""

    location_id: str
    contact_id: str
    #: Channel columns to set, all to ``value``; empty: only the row's timestamp moves.
    columns: tuple[str, ...]
    value: str
    event: str
    occurred_at: str
    detail: str
    register: bool = False


@dataclass(frozen=True)
class Item:
    kind: str
    command: cmd.Command
    crud: Crud


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


class Workload:
    """Generates contacts and items, reproducibly from ``seed``.

    ``expected_items`` spreads the stream's clock over the past two years, so
    even a million items stay in the past of the ledger's clock.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        locations: int = 4,
        expected_items: int = 10_000,
        now: datetime | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.prefix = f"b{seed}"
        self.locations = [f"loc-{i + 1}" for i in range(locations)]
        now = now or datetime.now(UTC)
        span = timedelta(days=730)
        self.t0 = now - span - timedelta(hours=1)
        self.step = min(timedelta(seconds=30), span / max(expected_items, 1))
        self.clock = self.t0
        self.people: list[Person] = []
        self.recent: deque[Item] = deque(maxlen=500)
        self.seq = 0
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]
        self.counts: Counter[str] = Counter()
        self.late = 0

    # -- contacts --------------------------------------------------------------------
    def _new_person(self) -> Person:
        n = len(self.people)
        location = self.locations[n % len(self.locations)]
        if self.people and self.rng.random() < SHARED_PHONE_SHARE:
            same_place = [p for p in self.people[-20:] if p.location_id == location]
            phone = same_place[-1].phone if same_place else self._phone(n)
        else:
            phone = self._phone(n)
        person = Person(
            location, f"{self.prefix}-c{n:07d}", phone, f"user{n}@mail{n % 97}.example.com"
        )
        self.people.append(person)
        return person

    def _phone(self, n: int) -> str:
        area = AREA_CODES[n % len(AREA_CODES)]
        k = n // len(AREA_CODES)
        return f"+1{area}{200 + (k // 10_000) % 800:03d}{k % 10_000:04d}"

    def register_item(self, person: Person | None = None, at: datetime | None = None) -> Item:
        p = person or self._new_person()
        t = at or self._tick()
        command = cmd.RegisterContact(
            p.location_id, p.contact_id, (p.phone,), (p.email,), t, actor="import"
        )
        crud = Crud(p.location_id, p.contact_id, (), "inactive", "Registered", _iso(t), "", True)
        return self._keep(Item("register", command, crud))

    def population(self, n: int) -> Iterator[Item]:
        """``n`` new contacts registering (the population the stream then talks about)."""
        for _ in range(n):
            yield self.register_item()

    # -- the stream ------------------------------------------------------------------
    def _tick(self) -> datetime:
        self.clock += self.step
        return self.clock

    def _when(self) -> datetime:
        now = self._tick()
        if self.rng.random() < LATE_SHARE:
            self.late += 1
            back = timedelta(seconds=self.rng.uniform(3600, 14 * 86400))
            return max(self.t0, now - back)
        return now

    def _id(self, kind: str) -> str:
        self.seq += 1
        return f"{kind}{self.prefix}x{self.seq:09d}"

    def _keep(self, item: Item) -> Item:
        self.recent.append(item)
        self.counts[item.kind] += 1
        return item

    def stream(self, n: int) -> Iterator[Item]:
        """``n`` items of the mix (needs a population: see :meth:`population`)."""
        for _ in range(n):
            yield self.item()

    def item(self) -> Item:
        if not self.people:
            return self.register_item()
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "duplicate" and self.recent:
            again = self.rng.choice(self.recent)
            self.counts["duplicate"] += 1
            return Item("duplicate", again.command, again.crud)
        if kind in ("register", "duplicate"):
            return self.register_item()
        p = self.rng.choice(self.people)
        at = self._when()
        return self._keep(self._make(kind, p, at))

    def _make(self, kind: str, p: Person, at: datetime) -> Item:
        rng = self.rng
        loc, cid, when = p.location_id, p.contact_id, _iso(at)
        command: cmd.Command
        if kind.startswith("inbound-"):
            channel = Channel.WHATSAPP if rng.random() < 0.15 else Channel.SMS
            bodies = {
                "inbound-stop": STOP_BODIES,
                "inbound-start": START_BODIES,
                "inbound-revocation": REVOCATION_BODIES,
                "inbound-other": OTHER_BODIES,
            }[kind]
            body = rng.choice(bodies)
            sender = f"whatsapp:{p.phone}" if channel is Channel.WHATSAPP else p.phone
            command = cmd.ReceiveInbound(loc, channel, sender, body, self._id("SM"), at)
            value = {"inbound-stop": "permanent", "inbound-start": "inactive",
                     "inbound-revocation": "active"}.get(kind)  # fmt: skip
            columns = (channel.value,) if value else ()
            return Item(kind, command, Crud(loc, cid, columns, value or "", kind, when, body))
        if kind.startswith("carrier-"):
            channel, status, code = Channel.SMS, "undelivered", None
            value = ""
            if kind == "carrier-temporary":
                code, value = rng.choice(TEMPORARY_CODES), "active"
            elif kind == "carrier-permanent":
                code, value = rng.choice(PERMANENT_CODES), "permanent"
            elif kind == "carrier-whatsapp":
                channel, code, value = Channel.WHATSAPP, 63014, "permanent"
            elif kind == "carrier-sender-side":
                code = rng.choice(SENDER_SIDE_CODES)
            else:
                status = "delivered"
            command = cmd.ReportCarrierStatus(
                loc, channel, p.phone, self._id("SM"), status, code, at
            )
            columns = (channel.value,) if value else ()
            return Item(kind, command, Crud(loc, cid, columns, value, kind, when, str(code or "")))
        if kind.startswith("mailgun-"):
            reason: str | None = None
            if kind == "mailgun-failed-permanent":
                signal = EmailSignal.FAILED_PERMANENT
                reason = rng.choice(PERMANENT_FAILURE_REASONS)
                value = {"old": "", "suppress-complaint": "permanent",
                         "suppress-unsubscribe": "permanent"}.get(reason, "active")  # fmt: skip
            elif kind == "mailgun-failed-temporary":
                signal, value = EmailSignal.FAILED_TEMPORARY, ""
            elif kind == "mailgun-complained":
                signal, value = EmailSignal.COMPLAINED, "permanent"
            else:
                signal, value = EmailSignal.UNSUBSCRIBED, "permanent"
            command = cmd.ReportEmailEvent(
                loc, p.email, signal, self._id("mg-"), reason, self._id("ev-"), at
            )
            columns = ("email",) if value else ()
            return Item(kind, command, Crud(loc, cid, columns, value, kind, when, reason or ""))
        channels = tuple(rng.sample(USER_CHANNELS, rng.choice((1, 1, 1, 2, 6))))
        actor = rng.choice(ACTORS)
        cols = tuple(c.value for c in channels)
        if kind == "user-set":
            command = cmd.SetDnd(loc, cid, channels, actor, "asked by phone", at, self._id("req-"))
            return Item(kind, command, Crud(loc, cid, cols, "active", kind, when, actor))
        if kind == "user-clear":
            attested = Channel.EMAIL in channels and rng.random() < 0.5
            command = cmd.ClearDnd(loc, cid, channels, actor, None, attested, at, self._id("req-"))
            return Item(kind, command, Crud(loc, cid, cols, "inactive", kind, when, actor))
        command = cmd.ApproveOptIn(
            loc, cid, channels, "sam", self._id("SUP-"), "signed web form", at, self._id("req-")
        )
        return Item(kind, command, Crud(loc, cid, cols, "inactive", kind, when, "sam"))

    # -- one contact with a long history ---------------------------------------------------
    def heavy_contact(self, events: int) -> tuple[Person, list[cmd.Command], datetime, datetime]:
        """A contact and at least ``events`` commands for it (one event each, or more).

        Users set and clear temporary DND on call, fb and gmb; every tenth item
        is an inbound STOP or START on its phone. Returns the person, the
        commands and the span of their ``occurred_at``.
        """
        # Its own phone (an area code the others never get): its history stays its own.
        p = Person(self.locations[0], f"{self.prefix}-heavy", "+18085550100", "heavy@example.com")
        start = self.t0 + timedelta(seconds=1)
        step = timedelta(hours=6)
        commands: list[cmd.Command] = [
            cmd.RegisterContact(p.location_id, p.contact_id, (p.phone,), (p.email,), start)
        ]
        channels = (Channel.CALL, Channel.FB, Channel.GMB)
        for i in range(1, events):
            at = start + step * i
            ch = (channels[i % 3],)
            if i % 10 == 0:
                body = "STOP" if i % 20 == 0 else "START"
                commands.append(
                    cmd.ReceiveInbound(
                        p.location_id, Channel.SMS, p.phone, body, self._id("SMh"), at
                    )
                )
            elif (i // 3) % 2 == 0:
                commands.append(
                    cmd.SetDnd(p.location_id, p.contact_id, ch, "alice", None, at, self._id("rqh"))
                )
            else:
                commands.append(
                    cmd.ClearDnd(p.location_id, p.contact_id, ch, "alice", None, False, at, self._id("rqh"))
                )  # fmt: skip
        return p, commands, start, start + step * events


__all__ = ["MIX", "Crud", "Item", "Person", "Workload"]
