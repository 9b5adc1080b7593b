"""DESIGN §2 to the letter: the defects an independent check found (issue 12).

Every test here runs on memory, SQLite and PostgreSQL (the ``ledger`` and
``db_url`` fixtures), through the application.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import IdempotencyKeyReused, UnknownContact
from dnd_ledger.domain.keywords import normalise
from dnd_ledger.domain.policy import DEFAULT_POLICY, Policy, load_policy
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, DndKind, EmailSignal, Overall
from dnd_ledger.providers import twilio
from dnd_ledger.providers.backfill import iter_backfill
from dnd_ledger.providers.outcomes import Ignored, ParseError

L = "loc-1"
ADA, BOB = "ada", "bob"
PHONE, PHONE2 = "+14155550100", "+14155550111"
EMAIL = "ada@example.com"
SMS, EMAIL_CH, WA = Channel.SMS, Channel.EMAIL, Channel.WHATSAPP
KEY = b"test-key-0123456789abcdef"
DATA = Path(__file__).resolve().parents[1] / "data" / "providers"
README = Path(__file__).resolve().parents[2] / "README.md"


def register(ledger: DndLedger, contact: str = ADA, phones=(PHONE,), emails=(EMAIL,)) -> None:
    ledger.execute(c.RegisterContact(L, contact, tuple(phones), tuple(emails)))


def status_of(ledger: DndLedger, channel: Channel, contact: str = ADA, **kw: Any) -> DndKind:
    return ledger.status(L, contact, **kw).channels[channel].status


def event_count(ledger: DndLedger) -> int:
    return len(ledger.recorder.select_notifications(start=1, limit=1_000_000))


@pytest.fixture
def ledger_with(db_url: str, clock: Clock) -> Iterator[Any]:
    """Opens the test's database with a given policy."""
    opened: list[DndLedger] = []

    def open_with(policy: Policy) -> DndLedger:
        app = DndLedger(db_url, pii_key=KEY, clock=clock, policy=policy)
        opened.append(app)
        return app

    yield open_with
    for app in opened:
        app.close()


def policy_file(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


# -- 1. a policy file merges with the defaults --------------------------------------
class TestPolicyFilesMerge:
    def test_a_file_adding_one_carrier_code_keeps_every_built_in_one(
        self, ledger_with: Any, tmp_path: Path
    ) -> None:
        policy = policy_file(
            tmp_path, 'version = "car-1"\n[carrier_codes.30008]\neffect = "temporary"\n'
        )
        ledger = ledger_with(policy)
        register(ledger)
        for code, sid in ((30004, "SM-1"), (30008, "SM-2")):
            out = ledger.execute(c.ReportCarrierStatus(L, SMS, PHONE, sid, "undelivered", code))
            assert out.result == "appended", code
        assert status_of(ledger, SMS) is DndKind.PERMANENT  # 30004: an opt-out, kept
        assert set(policy.carrier_codes) == {*DEFAULT_POLICY.carrier_codes, "30008"}

    def test_the_readme_example_keeps_the_built_in_email_reasons(
        self, ledger_with: Any, tmp_path: Path
    ) -> None:
        text = README.read_text().split("## The policy file", 1)[1]
        policy = policy_file(tmp_path, text.split("```toml\n", 1)[1].split("```", 1)[0])
        ledger = ledger_with(policy)
        register(ledger)
        out = ledger.execute(
            c.ReportEmailEvent(L, EMAIL, EmailSignal.FAILED_PERMANENT, "t1", "suppress-complaint")
        )
        assert out.result == "appended"
        assert status_of(ledger, EMAIL_CH) is DndKind.PERMANENT
        old = ledger.execute(
            c.ReportEmailEvent(L, EMAIL, EmailSignal.FAILED_PERMANENT, "t2", "old")
        )
        assert old.result == "appended"  # and the file's own entry is in force

    def test_removing_a_built_in_entry_takes_an_explicit_effect_none(
        self, ledger_with: Any, tmp_path: Path
    ) -> None:
        policy = policy_file(tmp_path, '[carrier_codes.30005]\neffect = "none"\n')
        ledger = ledger_with(policy)
        register(ledger)
        out = ledger.execute(c.ReportCarrierStatus(L, SMS, PHONE, "SM-1", "undelivered", 30005))
        assert out.result == "ignored"
        assert policy.carrier_codes["30005"].effect == "none"  # shown as removed, not missing
        assert policy.carrier_rule(30003) is not None

    def test_a_review_table_changes_only_the_keys_it_names(self, tmp_path: Path) -> None:
        policy = policy_file(tmp_path, '[review]\neffect = "permanent"\n')
        assert policy.review.enabled is True
        assert policy.review.effect == "permanent"
        assert policy.classify_inbound("please quit texting me").value == "suspected-revocation"


# -- 2. no raw personal data in any stored event or view row --------------------------
_PHONE_RE = re.compile(r"\+[1-9][0-9]{9,14}")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _ingest_every_format(ledger: DndLedger) -> list[bytes]:
    """Ingest every fixture of every format; returns the files' bytes."""
    files = [
        ("twilio-inbound", None, DATA / "twilio" / "inbound-backfill.jsonl"),
        ("twilio-status", None, DATA / "twilio" / "status-backfill.jsonl"),
        ("mailgun", None, DATA / "mailgun" / "webhooks-backfill.jsonl"),
        ("mailgun-events", None, DATA / "mailgun" / "events-pages.jsonl"),
        *(("mailgun-suppressions", name, DATA / "mailgun" / f"suppressions-{name}.csv")
          for name in ("bounces", "complaints", "unsubscribes")),
    ]  # fmt: skip
    seen = []
    for fmt, list_name, path in files:
        raw = path.read_bytes()
        seen.append(raw)
        items = iter_backfill(raw.splitlines(keepends=True), fmt, L, list_name)
        commands = [i.result for i in items if not isinstance(i.result, Ignored | ParseError)]
        assert commands, path
        outcomes = ledger.execute_many(commands)  # type: ignore[arg-type]
        assert any(o.result == "appended" for o in outcomes), path
    return seen


def _raw_values(files: list[bytes], extra: list[str]) -> set[str]:
    values = set(extra)
    for raw in files:
        text = raw.decode()
        values.update(_PHONE_RE.findall(text))
        values.update(e.lower() for e in _EMAIL_RE.findall(text))
        for line in text.splitlines():
            if line.startswith("{") and '"Body"' in line:
                body = json.loads(line)["Body"]
                if normalise(body).upper() not in {"STOP", "START"}:  # a keyword is its code
                    values.add(body)
    return values


def _every_row(ledger: DndLedger, skip: set[str]) -> Iterator[tuple[str, str]]:
    if ledger.db.engine == "postgres":
        tables = ledger.sql.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        tables = ledger.sql.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    names = {str(t[0]) for t in tables} - skip
    events_table = ledger.events_table.split(".")[-1]
    assert {events_table, "dnd_audit", "dnd_status_contacts"} <= names
    for name in sorted(names):
        for row in ledger.sql.fetchall(f"SELECT * FROM {name}"):
            for value in row:
                if isinstance(value, bytes | bytearray | memoryview):
                    value = bytes(value).decode("utf-8", "replace")
                yield name, str(value)


class TestNoRawPersonalDataIsStored:
    def test_no_stored_event_or_view_row_holds_a_raw_phone_email_or_body(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        evidence = "web form signed by Erin on 2026-10-30"
        register(ledger, "erin", phones=("+14155550100", "+14155550101"),
                 emails=("erin@example.com", "alice@example.org"))  # fmt: skip
        ledger.execute(c.RegisterContact(L, "carl", ("+14155550123",), ("carl@example.net",),
                                         request_id="reg-carl"))  # fmt: skip
        files = _ingest_every_format(ledger)
        ledger.execute(c.ReceiveInbound(L, SMS, "+14155550123", "hi, this is Carl at home", "SMx1"))
        ledger.execute(c.SetDnd(L, "carl", (EMAIL_CH,), "alice", "asked", request_id="r1"))
        ledger.execute(c.ClearDnd(L, "carl", (EMAIL_CH,), "alice", request_id="r2"))
        ledger.execute(c.ApproveOptIn(L, "erin", (SMS,), "sam", "SUP-1", evidence))
        ledger.execute(c.ImportLegacy(L, "dora", True, ("+14155550177",), ("dora@example.com",)))
        ledger.refresh_views()
        raw = _raw_values(files, ["+14155550123", "carl@example.net", "hi, this is Carl",
                                  evidence, "+14155550177", "dora@example.com"])  # fmt: skip
        assert "erin@example.com" in raw
        assert "Please stop texting me" in raw
        found = [(table, value) for table, text in _every_row(ledger, {"dnd_pii"})
                 for value in raw if value in text or value.lstrip("+") in text]  # fmt: skip
        assert found == []


# -- 3, 4. keywords ----------------------------------------------------------------------
class TestKeywordsToTheLetter:
    @pytest.mark.parametrize("body", ["STOP ❤️", "STOP 👍🏽", "❤️ STOP", "STOP #️⃣", "STOP\u200d"])
    def test_emoji_with_modifiers_around_an_opt_out_keep_it_an_opt_out(
        self, ledger: DndLedger, body: str
    ) -> None:
        register(ledger)
        out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE, body, "SM1"))
        assert out.events == ("OptOutKeyword",)
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_start_with_an_emoji_is_the_opt_in(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM1"))
        out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "START ❤️", "SM2"))
        assert out.events == ("StartReceived",)
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    @pytest.mark.parametrize(
        "body", ["please QUIT texting me", "CANCEL my subscription", "end these messages now"]
    )
    def test_a_longer_message_with_any_opt_out_word_is_flagged(
        self, ledger: DndLedger, body: str
    ) -> None:
        register(ledger)
        out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE, body, "SM1"))
        assert out.events == ("RevocationSuspected",)
        assert status_of(ledger, SMS) is DndKind.ACTIVE

    @pytest.mark.parametrize("body", ["STOP ALL", "stop all", "Stop  All!"])
    def test_stop_all_with_a_space_is_an_opt_out_keyword(
        self, ledger: DndLedger, body: str
    ) -> None:
        register(ledger)
        out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE, body, "SM1"))
        assert out.events == ("OptOutKeyword",)


# -- 6. erasure ----------------------------------------------------------------------------
class TestErasureIsComplete:
    def test_erasure_removes_bodies_and_opt_in_evidence_too(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "please stop texting me, Ada", "SM1"))
        ledger.execute(c.ApproveOptIn(L, ADA, (SMS,), "sam", "SUP-1", "Ada's signed form"))
        refs = [v for h in ledger.history(L, ADA) for k, v in h.detail.items()
                if k in ("body_ref", "evidence_ref")]  # fmt: skip
        assert len(refs) == 2
        assert {ledger.reveal(r) for r in refs} == {
            "please stop texting me, Ada",
            "Ada's signed form",
        }
        done = ledger.erase_personal_data(L, ADA)
        assert done.erased == 4  # phone, email, body, evidence
        assert done.kept == ()
        assert [ledger.reveal(r) for r in refs] == [None, None]
        left = {str(r[0]) for r in ledger.sql.fetchall("SELECT value FROM dnd_pii")}
        assert left == set()
        assert status_of(ledger, SMS) is DndKind.INACTIVE  # the ledger itself is intact

    def test_a_shared_address_is_kept_for_the_contact_not_erased(self, ledger: DndLedger) -> None:
        register(ledger, ADA, phones=(PHONE,), emails=(EMAIL,))
        register(ledger, BOB, phones=(PHONE, PHONE2), emails=())
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM1"))
        phone_ref = ledger.contact_addresses(L, ADA)["phones"][0]
        done = ledger.erase_personal_data(L, ADA)
        kept = {k.ref: (k.kind, k.for_contacts) for k in done.kept}
        assert kept[phone_ref] == ("phone", (BOB,))
        assert ledger.reveal(phone_ref) == PHONE  # still Bob's
        assert ledger.reveal(ledger.contact_addresses(L, ADA)["emails"][0]) is None
        later = ledger.erase_personal_data(L, BOB)
        assert phone_ref in later.erased_refs
        assert ledger.reveal(phone_ref) is None
        assert status_of(ledger, SMS, BOB) is DndKind.PERMANENT


# -- 8. carrier codes on the channel the message went out on ------------------------------
class TestCarrierCodesFollowTheChannel:
    @pytest.mark.parametrize("code", [30003, 30005, 30006])
    def test_an_unreachable_whatsapp_message_sets_dnd_on_whatsapp(
        self, ledger: DndLedger, code: int
    ) -> None:
        register(ledger)
        form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": str(code),
                "To": f"whatsapp:{PHONE}"}  # fmt: skip
        command = twilio.status_to_command(form, L)
        assert not isinstance(command, Ignored)
        ledger.execute(command)
        assert status_of(ledger, WA) is DndKind.ACTIVE
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    def test_a_policy_may_still_pin_a_code_to_a_channel(
        self, ledger_with: Any, tmp_path: Path
    ) -> None:
        ledger = ledger_with(policy_file(tmp_path, '[carrier_codes.30003]\nchannel = "sms"\n'))
        register(ledger)
        ledger.execute(c.ReportCarrierStatus(L, WA, PHONE, "SM1", "undelivered", 30003))
        assert status_of(ledger, SMS) is DndKind.ACTIVE
        assert status_of(ledger, WA) is DndKind.INACTIVE


# -- 9. a request id names one request --------------------------------------------------
class TestRequestIds:
    def test_a_reused_request_id_with_other_content_is_refused(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (SMS,), "alice", request_id="r1"))
        before = event_count(ledger)
        with pytest.raises(IdempotencyKeyReused, match="r1"):
            ledger.execute(c.ClearDnd(L, ADA, (SMS,), "alice", request_id="r1"))
        with pytest.raises(IdempotencyKeyReused):
            ledger.execute(c.SetDnd(L, ADA, (SMS, EMAIL_CH), "alice", request_id="r1"))
        assert event_count(ledger) == before
        assert status_of(ledger, SMS) is DndKind.ACTIVE

    def test_the_same_request_again_is_a_duplicate(self, ledger: DndLedger) -> None:
        register(ledger)
        first = ledger.execute(c.SetDnd(L, ADA, (SMS, WA), "alice", "why", request_id="r1"))
        again = ledger.execute(c.SetDnd(L, ADA, (WA, SMS), "alice", "why", request_id="r1"))
        assert (first.result, again.result) == ("appended", "duplicate")

    def test_in_a_batch_the_reused_id_is_rejected_and_the_rest_recorded(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (SMS,), "alice", request_id="r1"))
        outcomes = ledger.execute_many([
            c.ClearDnd(L, ADA, (SMS,), "alice", request_id="r1"),
            c.SetDnd(L, ADA, (EMAIL_CH,), "alice", request_id="r2"),
        ])  # fmt: skip
        assert [o.result for o in outcomes] == ["rejected", "appended"]
        assert "already used" in str(outcomes[0].detail["error"])

    def test_a_registration_request_id_covers_its_addresses(self, ledger: DndLedger) -> None:
        ledger.execute(c.RegisterContact(L, ADA, (PHONE,), request_id="reg-1"))
        assert ledger.execute(c.RegisterContact(L, ADA, (PHONE,), request_id="reg-1")).result == (
            "duplicate"
        )
        with pytest.raises(IdempotencyKeyReused):
            ledger.execute(c.RegisterContact(L, ADA, (PHONE2,), request_id="reg-1"))
        assert ledger.contact_addresses(L, ADA)["phones"] == [
            ledger.contact_addresses(L, ADA)["phones"][0]
        ]


# -- 10. legacy rows are keyed by their content ---------------------------------------------
class TestLegacyRows:
    def test_a_corrected_row_is_recorded_and_an_identical_one_is_a_duplicate(
        self, ledger: DndLedger
    ) -> None:
        first = ledger.execute(c.ImportLegacy(L, ADA, False, (PHONE,)))
        assert first.result == "appended"
        assert ledger.status(L, ADA).dnd is Overall.OFF
        corrected = ledger.execute(c.ImportLegacy(L, ADA, True, (PHONE, PHONE2)))
        assert corrected.result == "appended"
        assert ledger.status(L, ADA).dnd is Overall.ON
        assert all(status_of(ledger, ch) is DndKind.ACTIVE for ch in ALL_CHANNELS)
        assert len(ledger.contact_addresses(L, ADA)["phones"]) == 2
        assert ledger.execute(c.ImportLegacy(L, ADA, True, (PHONE2, PHONE))).result == "duplicate"
        out = ledger.execute(c.ReceiveInbound(L, SMS, PHONE2, "STOP", "SM1"))
        assert out.contacts == (ADA,)  # the corrected row's phone is registered


# -- 11. past-time queries before registration ----------------------------------------------
class TestPastTimeQueriesBeforeRegistration:
    def test_as_of_or_known_at_before_registration_is_an_error(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        registered = clock.now
        register(ledger)
        clock.advance(hours=2)
        before = registered - timedelta(minutes=1)
        for kw in (
            {"as_of": before},
            {"known_at": before},
            {"as_of": before, "known_at": clock.now},
        ):
            with pytest.raises(UnknownContact, match="not registered"):
                ledger.status(L, ADA, **kw)
            with pytest.raises(UnknownContact, match="not registered"):
                ledger.can_send(L, ADA, SMS, **kw)
        assert ledger.can_send(L, ADA, SMS, as_of=registered, known_at=registered).allowed

    def test_a_backdated_registration_counts_from_its_own_time(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        past = clock.now - timedelta(days=30)
        ledger.execute(c.RegisterContact(L, ADA, (PHONE,), occurred_at=past))
        assert ledger.can_send(L, ADA, SMS, as_of=past + timedelta(days=1)).allowed
        with pytest.raises(UnknownContact):
            ledger.can_send(L, ADA, SMS, as_of=past - timedelta(days=1))


# -- 12. backfilled Twilio inbound messages keep their time ----------------------------------
class TestBackfilledInboundTime:
    def _form(self, sid: str, body: str, **extra: str) -> dict[str, str]:
        return {"MessageSid": sid, "AccountSid": "AC1", "From": PHONE, "To": "+14155550199",
                "Body": body, **extra}  # fmt: skip

    def test_an_archived_stop_does_not_override_a_later_live_start(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        sent = clock.now + timedelta(minutes=10)
        clock.advance(hours=1)
        ledger.execute(twilio.inbound_to_command(self._form("SM2", "START"), L))  # live: now
        clock.advance(hours=1)
        archived = self._form("SM1", "STOP", DateSent=sent.strftime("%a, %d %b %Y %H:%M:%S +0000"))
        ledger.execute(twilio.inbound_to_command(archived, L))
        assert status_of(ledger, SMS) is DndKind.INACTIVE
        stop = next(h for h in ledger.history(L, ADA) if h.event == "OptOutKeyword")
        assert stop.occurred_at == sent.replace(microsecond=0)
        assert status_of(ledger, SMS, as_of=sent + timedelta(minutes=1)) is DndKind.PERMANENT

    def test_the_export_field_date_sent_counts_too(self, ledger: DndLedger, clock: Clock) -> None:
        register(ledger)
        sent = clock.now + timedelta(minutes=5)
        clock.advance(hours=1)
        form = self._form("SM1", "STOP", date_sent=sent.isoformat())
        ledger.execute(twilio.inbound_to_command(form, L))
        stop = next(h for h in ledger.history(L, ADA) if h.event == "OptOutKeyword")
        assert stop.occurred_at == sent

    def test_without_a_date_the_ingest_time_counts(self, ledger: DndLedger, clock: Clock) -> None:
        register(ledger)
        clock.advance(hours=1)
        ledger.execute(twilio.inbound_to_command(self._form("SM1", "STOP"), L))
        stop = next(h for h in ledger.history(L, ADA) if h.event == "OptOutKeyword")
        assert stop.occurred_at == clock.now
