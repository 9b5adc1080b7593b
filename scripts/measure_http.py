#!/usr/bin/env python3
"""Measure can-send over HTTP: requests per second and p50/p99 latency on loopback.

Builds a store of N contacts (default 100,000) with ``execute_many`` batches, one
phone and one email each, a tenth of them with DND on some channel, then starts
``dnd-ledger serve`` as a separate process on a free 127.0.0.1 port and sends
``GET .../can-send`` requests from keep-alive connections in client threads, for
random contacts and channels. Also times ``POST /v1/can-send:batch`` with 1,000
triples per call. Not a test: it prints numbers.

    .venv/bin/python scripts/measure_http.py                  # 100,000 contacts, SQLite
    .venv/bin/python scripts/measure_http.py --contacts 10000 --requests 5000
    .venv/bin/python scripts/measure_http.py --db postgresql://postgres@127.0.0.1/dnd_bench \\
        --pii-key-file /tmp/bench.key --workers 2

With ``--db`` naming an existing store that already holds the contacts, the
build is skipped (``--reuse``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dnd_ledger import commands as cmd  # noqa: E402
from dnd_ledger.domain.values import ALL_CHANNELS  # noqa: E402
from dnd_ledger.settings import Settings  # noqa: E402

LOCATION = "loc-bench"
TOKEN = "bench-" + secrets.token_urlsafe(24)


def contact_id(i: int) -> str:
    return f"c-{i:07d}"


def build(settings: Settings, n: int, batch: int) -> dict[str, float]:
    """Register n contacts (and DND for a tenth) in execute_many batches; catch the views up."""
    ledger = settings.open()
    try:
        started = time.perf_counter()
        done = 0
        rng = random.Random(7)
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            commands: list[cmd.Command] = [
                cmd.RegisterContact(
                    LOCATION, contact_id(i), phones=(f"+1415{i:07d}",),
                    emails=(f"person{i}@example.com",),
                )
                for i in range(lo, hi)
            ]  # fmt: skip
            commands += [
                cmd.SetDnd(LOCATION, contact_id(i), (rng.choice(ALL_CHANNELS),), "bench")
                for i in range(lo, hi)
                if i % 10 == 0
            ]
            outcomes = ledger.execute_many(commands)
            bad = [o for o in outcomes if o.result == "rejected"]
            if bad:
                raise SystemExit(f"build refused commands: {bad[0].detail}")
            done = hi
            rate = done / (time.perf_counter() - started)
            print(f"\r  registered {done:,}/{n:,} ({rate:,.0f}/s)", end="", file=sys.stderr)
        written = time.perf_counter() - started
        print(file=sys.stderr)
        started = time.perf_counter()
        applied = ledger.refresh_views()
        projected = time.perf_counter() - started
        return {"write_s": written, "project_s": projected, "events": float(applied)}
    finally:
        ledger.close()


def has_contacts(settings: Settings, n: int) -> bool:
    ledger = settings.open()
    try:
        ledger.refresh_views()
        return ledger.views.channels(LOCATION, contact_id(n - 1)) is not None
    finally:
        ledger.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(directory: Path) -> Path:
    path = directory / "bench.toml"
    path.write_text(
        'public_url = "http://127.0.0.1"\n'
        f"[locations.{LOCATION}]\n"
        f'twilio_auth_token = "{secrets.token_hex(16)}"\n'
        "[[tokens]]\n"
        'name = "bench"\n'
        f'sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
        'roles = ["read"]\n'
    )
    return path


def start_server(
    db: str, config: Path, port: int, workers: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("dnd-ledger")
    argv = [str(exe), "--db", db, "serve", "--config", str(config), "--port", str(port),
            "--workers", str(workers), "--no-access-log"]  # fmt: skip
    out = log.open("wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"serve did not answer within 60s:\n{log.read_text()}")


def load(
    port: int, n_contacts: int, total: int, threads: int, warmup: int
) -> tuple[list[float], float, int]:
    """``total`` can-send requests over ``threads`` keep-alive connections."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    channels = [c.value for c in ALL_CHANNELS]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_thread = total // threads
    start_gate = threading.Barrier(threads + 1)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def one() -> float:
            cid = contact_id(rng.randrange(n_contacts))
            ch = rng.choice(channels)
            mode = "manual" if rng.random() < 0.5 else "automated"
            url = f"/v1/locations/{LOCATION}/contacts/{cid}/can-send?channel={ch}&mode={mode}"
            t0 = time.perf_counter()
            conn.request("GET", url, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            took = time.perf_counter() - t0
            if resp.status != 200 or b'"allowed"' not in body:
                with lock:
                    errors[0] += 1
            return took

        for _ in range(warmup // threads):
            one()
        start_gate.wait()
        mine = [one() for _ in range(per_thread)]
        with lock:
            latencies.extend(mine)
        conn.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    return latencies, wall, errors[0]


def batch_calls(port: int, n_contacts: int, calls: int, size: int) -> list[float]:
    rng = random.Random(99)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    out = []
    for _ in range(calls):
        items = [
            {"location_id": LOCATION, "contact_id": contact_id(rng.randrange(n_contacts)),
             "channel": rng.choice(ALL_CHANNELS).value}
            for _ in range(size)
        ]  # fmt: skip
        body = json.dumps({"items": items})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/can-send:batch", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out.append(time.perf_counter() - t0)
        if resp.status != 200 or len(json.loads(data)["results"]) != size:
            raise SystemExit(f"batch call failed: {resp.status} {data[:200]!r}")
    conn.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=100_000, help="store size (default 100,000)")
    p.add_argument("--requests", type=int, default=20_000, help="can-send requests to time")
    p.add_argument("--threads", type=int, default=8, help="client connections (threads)")
    p.add_argument("--warmup", type=int, default=1_000, help="untimed requests first")
    p.add_argument("--batch", type=int, default=1_000, help="commands per execute_many")
    p.add_argument("--batch-calls", type=int, default=20, help="timed can-send:batch calls")
    p.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    p.add_argument("--pii-key-file", help="PII key file (needed for PostgreSQL)")
    p.add_argument("--workers", type=int, default=1, help="serve --workers (PostgreSQL only)")
    p.add_argument("--reuse", action="store_true", help="skip the build if the store is there")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dnd-measure-"))
    db = args.db or str(work / "bench.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DND_LEDGER_")}
    if args.pii_key_file:
        env["DND_LEDGER_PII_KEY_FILE"] = args.pii_key_file
    settings = Settings(db=db, pii_key_file=args.pii_key_file)
    print(f"store: {settings.database.display}, {args.contacts:,} contacts", file=sys.stderr)
    built: dict[str, float] | None = None
    if not (args.reuse and has_contacts(settings, args.contacts)):
        built = build(settings, args.contacts, args.batch)
    config = write_config(work)
    port = free_port()
    server = start_server(db, config, port, args.workers, env, work / "serve.log")
    try:
        latencies, wall, errors = load(port, args.contacts, args.requests, args.threads,
                                       args.warmup)  # fmt: skip
        batches = batch_calls(port, args.contacts, args.batch_calls, 1000)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    n = len(latencies)
    ms = [x * 1000 for x in latencies]
    print()
    print("command:  " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(
        f"machine:  {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"store:    {settings.database.engine}, {args.contacts:,} contacts", end="")
    if built:
        print(
            f" (built in {built['write_s']:.1f}s with execute_many batches of {args.batch};"
            f" views caught up with {built['events']:,.0f} events in {built['project_s']:.1f}s)"
        )
    else:
        print(" (reused)")
    print(f"server:   dnd-ledger serve, {args.workers} worker process(es), loopback")
    print(f"client:   {args.threads} keep-alive connections (threads), {n:,} timed requests")
    print(f"can-send: {n / wall:,.0f} requests/s; latency p50 {statistics.median(ms):.2f} ms,"
          f" p90 {pct(ms, 0.90):.2f} ms, p99 {pct(ms, 0.99):.2f} ms, max {max(ms):.2f} ms;"
          f" errors {errors}")  # fmt: skip
    bms = [x * 1000 for x in batches]
    print(f"batch:    {len(bms)} calls of 1,000 triples; p50 {statistics.median(bms):.1f} ms,"
          f" max {max(bms):.1f} ms; {1000 * len(bms) / sum(batches):,.0f} decisions/s")  # fmt: skip
    if not args.db:
        print(f"(store kept in {work}; delete it when done)", file=sys.stderr)


if __name__ == "__main__":
    main()
