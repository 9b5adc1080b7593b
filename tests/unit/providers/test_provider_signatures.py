"""Webhook signatures: Twilio's published vectors, Mailgun's HMAC, freshness and replay."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dnd_ledger.providers.signatures import (
    BadSignature,
    InMemoryReplayCache,
    ReplayCache,
    ReplayedToken,
    SignatureError,
    StaleTimestamp,
    compute_mailgun_signature,
    compute_twilio_signature,
    mailgun_signature_matches,
    verify_mailgun_signature,
    verify_twilio_signature,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "providers"
#: The key the Mailgun fixtures are signed with (tests/data/providers/SOURCE.md).
MAILGUN_TEST_KEY = "key-test-3f1e9d2c7b6a5948"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


VECTORS = load("twilio-signature-vectors.json")
TOKEN = VECTORS["auth_token"]
CASES = VECTORS["cases"]
FORM_CASES = [case for case in CASES if "body" not in case]
BODY_CASES = [case for case in CASES if "body" in case]
PLAIN = CASES[0]


def _params(case: dict[str, object]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in case["params"]]  # type: ignore[attr-defined]


# --- Twilio: the published vectors --------------------------------------------------


def test_the_vector_file_holds_form_and_json_body_cases() -> None:
    assert len(FORM_CASES) == 4
    assert len(BODY_CASES) == 1


@pytest.mark.parametrize("case", FORM_CASES, ids=lambda c: c["signature"])
def test_computed_signature_equals_each_published_form_vector(case: dict[str, object]) -> None:
    assert compute_twilio_signature(TOKEN, str(case["url"]), _params(case)) == case["signature"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["signature"])
def test_every_published_vector_verifies(case: dict[str, object]) -> None:
    body = str(case["body"]).encode() if "body" in case else None
    assert verify_twilio_signature(
        TOKEN, str(case["url"]), _params(case), str(case["signature"]), body=body
    )


def test_json_body_vector_signature_covers_the_url_alone() -> None:
    (case,) = BODY_CASES
    assert compute_twilio_signature(TOKEN, case["url"], []) == case["signature"]


def test_signature_made_over_the_url_with_443_verifies_when_the_port_is_dropped() -> None:
    with_port = next(c for c in CASES if ":443/" in c["url"])
    without = with_port["url"].replace(":443", "")
    assert verify_twilio_signature(TOKEN, without, _params(with_port), with_port["signature"])


def test_signature_made_over_the_url_with_80_verifies_when_the_port_is_dropped() -> None:
    with_port = next(c for c in CASES if ":80/" in c["url"])
    without = with_port["url"].replace(":80", "")
    assert verify_twilio_signature(TOKEN, without, _params(with_port), with_port["signature"])


def test_signature_made_without_a_port_verifies_when_the_default_port_is_added() -> None:
    url = PLAIN["url"].replace("mycompany.com/", "mycompany.com:443/")
    assert verify_twilio_signature(TOKEN, url, _params(PLAIN), PLAIN["signature"])


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://user:pw@mycompany.com:443/hook", "https://user:pw@mycompany.com/hook"),
        ("https://mycompany.com/hook?", "https://mycompany.com:443/hook?"),
        ("http://[2001:db8::1]:80/hook#x", "http://[2001:db8::1]/hook#x"),
    ],
    ids=["userinfo", "empty-query", "ipv6-fragment"],
)
def test_the_port_variant_changes_the_port_and_nothing_else(
    signed_url: str, received_url: str
) -> None:
    signature = compute_twilio_signature(TOKEN, signed_url, _params(PLAIN))
    assert verify_twilio_signature(TOKEN, received_url, _params(PLAIN), signature)


def test_a_non_default_port_is_never_added_or_dropped() -> None:
    url = PLAIN["url"].replace("mycompany.com/", "mycompany.com:8443/")
    assert not verify_twilio_signature(TOKEN, url, _params(PLAIN), PLAIN["signature"])


def test_the_default_port_of_the_other_scheme_is_not_dropped() -> None:
    url = PLAIN["url"].replace("mycompany.com/", "mycompany.com:80/")
    assert not verify_twilio_signature(TOKEN, url, _params(PLAIN), PLAIN["signature"])


def test_repeated_parameters_sign_the_same_in_any_order() -> None:
    repeated = next(c for c in CASES if [p[0] for p in c["params"]].count("Digits") == 2)
    shuffled = list(reversed(_params(repeated)))
    assert compute_twilio_signature(TOKEN, repeated["url"], shuffled) == repeated["signature"]


def test_each_value_of_a_repeated_parameter_is_signed() -> None:
    repeated = next(c for c in CASES if [p[0] for p in c["params"]].count("Digits") == 2)
    one_digit_dropped = [p for p in _params(repeated) if p != ("Digits", "5678")]
    assert not verify_twilio_signature(
        TOKEN, repeated["url"], one_digit_dropped, repeated["signature"]
    )


@pytest.mark.parametrize(
    ("url", "params", "token", "signature"),
    [
        (PLAIN["url"], [*_params(PLAIN)[:-1], ("To", "+18005551213")], TOKEN, PLAIN["signature"]),
        (PLAIN["url"], [*_params(PLAIN), ("Body", "STOP")], TOKEN, PLAIN["signature"]),
        (PLAIN["url"].replace("foo=1", "foo=2"), _params(PLAIN), TOKEN, PLAIN["signature"]),
        (PLAIN["url"].replace("https:", "http:"), _params(PLAIN), TOKEN, PLAIN["signature"]),
        (PLAIN["url"], _params(PLAIN), "54321", PLAIN["signature"]),
        (PLAIN["url"], _params(PLAIN), TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B9="),
        (PLAIN["url"], _params(PLAIN), TOKEN, ""),
        (PLAIN["url"], _params(PLAIN), TOKEN, "RSOYDt4T1cUTdK1PDd93/VVr8B8=é"),
    ],
    ids=[
        "param-changed",
        "param-added",
        "query-changed",
        "scheme-changed",
        "wrong-auth-token",
        "signature-altered",
        "signature-empty",
        "signature-non-ascii",
    ],
)
def test_a_tampered_twilio_request_is_refused(
    url: str, params: list[tuple[str, str]], token: str, signature: str
) -> None:
    assert not verify_twilio_signature(token, url, params, signature)


def test_a_json_body_that_does_not_match_its_hash_is_refused() -> None:
    (case,) = BODY_CASES
    tampered = case["body"].replace("value", "other").encode()
    assert not verify_twilio_signature(TOKEN, case["url"], [], case["signature"], body=tampered)


def test_a_json_body_without_a_hash_in_the_url_is_refused() -> None:
    (case,) = BODY_CASES
    url = case["url"].split("&bodySHA256=")[0]
    signature = compute_twilio_signature(TOKEN, url, [])
    assert not verify_twilio_signature(TOKEN, url, [], signature, body=case["body"].encode())


@pytest.mark.parametrize("url", ["https://[::1/hook?bodySHA256=ab", "https://host:99999/hook"])
def test_a_malformed_url_is_refused_not_raised(url: str) -> None:
    assert not verify_twilio_signature(TOKEN, url, [], "x", body=b"{}")
    assert not verify_twilio_signature(TOKEN, url, _params(PLAIN), "x")


def test_text_that_is_not_utf8_is_refused_not_raised() -> None:
    assert not verify_twilio_signature(TOKEN, PLAIN["url"], [("Body", "\udcff")], "x")


# --- Mailgun -------------------------------------------------------------------------

SIGNED_AT = datetime(2024, 5, 23, 9, 55, 27, tzinfo=UTC)
TIMESTAMP = str(int(SIGNED_AT.timestamp()))
TOKEN_MG = "c76b19212d2d61456f8267cc550e497d259a567e284f39405c"
GOOD = compute_mailgun_signature(MAILGUN_TEST_KEY, TIMESTAMP, TOKEN_MG)


def _verify(
    *,
    signature: str = GOOD,
    timestamp: str = TIMESTAMP,
    token: str = TOKEN_MG,
    now: datetime = SIGNED_AT,
    cache: ReplayCache | None = None,
) -> None:
    verify_mailgun_signature(
        MAILGUN_TEST_KEY,
        timestamp,
        token,
        signature,
        now=now,
        replay_cache=cache if cache is not None else InMemoryReplayCache(),
    )


def test_mailgun_signature_is_hex_hmac_sha256_of_timestamp_and_token() -> None:
    # Reference value computed independently: hmac.new(key, ts + token, sha256).hexdigest().
    assert GOOD == "6afdccf433e8a6ec72415b7b92f8df0c16472c95a435746bbc9fa0c627557154"


@pytest.mark.parametrize(
    "name",
    [
        "failed-permanent-bounce",
        "failed-permanent-suppress-complaint",
        "failed-temporary",
        "complained",
        "unsubscribed",
        "delivered",
        "opened",
    ],
)
def test_every_signed_mailgun_fixture_verifies_one_second_after_its_event(name: str) -> None:
    signature = load(f"mailgun/webhook-{name}.json")["signature"]
    now = datetime.fromtimestamp(int(signature["timestamp"]) + 1, UTC)
    verify_mailgun_signature(
        MAILGUN_TEST_KEY,
        signature["timestamp"],
        signature["token"],
        signature["signature"],
        now=now,
        replay_cache=InMemoryReplayCache(),
    )


def test_a_fresh_correctly_signed_mailgun_webhook_is_accepted() -> None:
    _verify()


def test_an_upper_case_hex_signature_is_accepted() -> None:
    _verify(signature=GOOD.upper())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signature", "0" * 64),
        ("signature", GOOD[:-1]),
        ("signature", ""),
        ("signature", GOOD + "é"),
        ("token", TOKEN_MG[:-1] + "d"),
        ("timestamp", str(int(TIMESTAMP) + 1)),
    ],
)
def test_a_forged_mailgun_signature_is_refused_as_bad(field: str, value: str) -> None:
    with pytest.raises(BadSignature, match="does not match"):
        _verify(**{field: value})  # type: ignore[arg-type]


def test_a_mailgun_signature_made_with_another_key_is_refused() -> None:
    other = compute_mailgun_signature("key-someone-else", TIMESTAMP, TOKEN_MG)
    with pytest.raises(BadSignature):
        _verify(signature=other)


@pytest.mark.parametrize("offset", [timedelta(minutes=15, seconds=1), timedelta(hours=6)])
def test_a_mailgun_signature_older_than_the_window_is_refused_as_stale(offset: timedelta) -> None:
    with pytest.raises(StaleTimestamp, match="outside the 0:15:00 window"):
        _verify(now=SIGNED_AT + offset)


def test_a_mailgun_signature_from_the_future_beyond_the_window_is_refused_as_stale() -> None:
    with pytest.raises(StaleTimestamp):
        _verify(now=SIGNED_AT - timedelta(minutes=16))


def test_a_mailgun_signature_exactly_at_the_window_edge_is_accepted() -> None:
    _verify(now=SIGNED_AT + timedelta(minutes=15))


def test_a_signed_timestamp_that_is_not_unix_seconds_is_refused_as_stale() -> None:
    timestamp = "2024-05-23T09:55:27Z"
    signature = compute_mailgun_signature(MAILGUN_TEST_KEY, timestamp, TOKEN_MG)
    with pytest.raises(StaleTimestamp, match="not a Unix time"):
        _verify(timestamp=timestamp, signature=signature)


def test_a_replayed_mailgun_token_is_refused() -> None:
    cache = InMemoryReplayCache()
    _verify(cache=cache)
    with pytest.raises(ReplayedToken, match="already used"):
        _verify(cache=cache, now=SIGNED_AT + timedelta(seconds=30))


def test_a_forged_request_does_not_burn_the_token_of_the_real_one() -> None:
    cache = InMemoryReplayCache()
    with pytest.raises(BadSignature):
        _verify(cache=cache, signature="0" * 64)
    _verify(cache=cache)


def test_a_stale_request_does_not_burn_its_token() -> None:
    cache = InMemoryReplayCache()
    with pytest.raises(StaleTimestamp):
        _verify(cache=cache, now=SIGNED_AT + timedelta(hours=1))
    _verify(cache=cache)


def test_every_refusal_is_a_signature_error_with_a_reason() -> None:
    with pytest.raises(SignatureError) as refused:
        _verify(signature="nope")
    assert refused.value.reason == str(refused.value)


def test_mailgun_verification_needs_a_timezone_aware_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(now=SIGNED_AT.replace(tzinfo=None))


def test_signature_match_without_freshness_is_available_for_archives() -> None:
    assert mailgun_signature_matches(MAILGUN_TEST_KEY, TIMESTAMP, TOKEN_MG, GOOD)
    assert not mailgun_signature_matches("other-key", TIMESTAMP, TOKEN_MG, GOOD)
    assert not mailgun_signature_matches(MAILGUN_TEST_KEY, TIMESTAMP, "\udcff", GOOD)


# --- the in-memory replay cache ------------------------------------------------------


def test_replay_cache_reports_a_token_new_once_only() -> None:
    cache = InMemoryReplayCache()
    assert cache.remember("t1", SIGNED_AT)
    assert not cache.remember("t1", SIGNED_AT + timedelta(seconds=1))
    assert cache.remember("t2", SIGNED_AT + timedelta(seconds=2))


def test_replay_cache_keeps_tokens_for_its_whole_retention() -> None:
    cache = InMemoryReplayCache(retention=timedelta(minutes=30))
    cache.remember("old", SIGNED_AT)
    cache.remember("other", SIGNED_AT + timedelta(minutes=30))
    assert not cache.remember("old", SIGNED_AT + timedelta(minutes=30))


def test_replay_cache_forgets_tokens_after_its_retention() -> None:
    cache = InMemoryReplayCache(retention=timedelta(minutes=30))
    cache.remember("old", SIGNED_AT)
    cache.remember("later", SIGNED_AT + timedelta(minutes=31))
    assert cache.remember("old", SIGNED_AT + timedelta(minutes=31))


def test_a_forgotten_token_replayed_later_is_still_refused_as_stale() -> None:
    cache = InMemoryReplayCache()
    _verify(cache=cache)
    cache.remember("someone-else", SIGNED_AT + timedelta(minutes=31))
    with pytest.raises(StaleTimestamp):
        _verify(cache=cache, now=SIGNED_AT + timedelta(minutes=31))


def test_replay_cache_admits_a_token_once_under_concurrent_callers() -> None:
    cache = InMemoryReplayCache()
    start = threading.Barrier(16)
    results: list[bool] = []

    def worker() -> None:
        start.wait()
        results.append(cache.remember("same-token", SIGNED_AT))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
