#!/usr/bin/env python3
"""Measure the HTTP decision path against two floors, in one run, on one store.

Builds a store of N contacts (default 100,000) with ``execute_many`` batches, one
phone and one email each, a tenth of them with DND on some channel, then starts
three servers on free 127.0.0.1 ports, with the same uvicorn options: ``dnd-ledger
serve`` (``ledger``) and two baselines on the same store that each do one
primary-key SELECT and return similar JSON (``raw``, a bare ASGI app, and
``fastapi``, a FastAPI ``def`` route; see ``dnd_ledger.bench.http_baselines``).
``wrk`` loads each with ``GET .../can-send`` for random contacts, channels and
modes at 1, 8 and 32 connections, then ``POST /v1/can-send:batch`` with one body
of 1,000 items, in rounds whose order rotates. It prints req/s, p50, p99, the
servers' CPU time per request and the ledger's ratios to each baseline (medians of
in-round ratios). Not a test: it prints numbers. Needs ``wrk`` (Debian: ``apt-get
install wrk``).

    .venv/bin/python scripts/measure_http.py                  # 100,000 contacts, SQLite
    .venv/bin/python scripts/measure_http.py --contacts 10000 --seconds 2 --rounds 1
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dnd_ledger import commands as cmd  # noqa: E402
from dnd_ledger.bench.http_baselines import DB_ENV  # noqa: E402
from dnd_ledger.bench.http_load import Table, get_script, post_script, run_wrk, wrk_path  # noqa: E402
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
    db: str, config: Path, port: int, workers: int, env: dict[str, str], log: Path,
    request_log: bool = False,
) -> subprocess.Popen[bytes]:  # fmt: skip
    exe = Path(sys.executable).with_name("dnd-ledger")
    argv = [str(exe), "--db", db, "serve", "--config", str(config), "--port", str(port),
            "--workers", str(workers),
            "--access-log" if request_log else "--no-access-log"]  # fmt: skip
    # The request log's lines (one per request) go to /dev/null: written, not kept.
    target = Path(os.devnull) if request_log else log
    out = target.open("wb")
    return wait_ready(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env),
                      port, log, "/healthz")  # fmt: skip


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, log: Path, path: str
) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status in (200, 404):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"serve did not answer within 60s:\n{log.read_text()}")


def start_baseline(
    name: str, db: str, port: int, workers: int, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """A baseline app under the same uvicorn options as ``serve`` (loop, parser, limits)."""
    argv = [sys.executable, "-m", "uvicorn", f"dnd_ledger.bench.http_baselines:{name}",
            "--factory", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--timeout-keep-alive", "5", "--limit-concurrency", "1000",
            "--workers", str(workers)]  # fmt: skip
    return wait_ready(subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                       env={**env, DB_ENV: db}), port, log, "/v1/x")  # fmt: skip


def batch_body(path: Path, n_contacts: int, size: int) -> Path:
    rng = random.Random(99)
    items = [
        {"location_id": LOCATION, "contact_id": contact_id(rng.randrange(n_contacts)),
         "channel": rng.choice(ALL_CHANNELS).value}
        for _ in range(size)
    ]  # fmt: skip
    path.write_bytes(json.dumps({"items": items}).encode())
    return path


def measure(
    servers: dict[str, tuple[int, int]], scripts: dict[str, str], connections: list[int],
    rounds: int, seconds: float,
) -> Table:  # fmt: skip
    """Every server at every connection count, ``rounds`` times, the order rotating."""
    table = Table()
    names = list(servers)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for c in connections:
            for name in order:
                port, pid = servers[name]
                run = run_wrk(port, scripts[name], c, seconds, pid)
                table.add(name, c, run)
                print(f"  round {r + 1} {name:8} c={c:<3} {run.rps:8,.0f} req/s"
                      f" p99 {run.p99_ms:7.1f} ms failed {run.failed}", file=sys.stderr)  # fmt: skip
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=100_000, help="store size (default 100,000)")
    p.add_argument("--seconds", type=float, default=5, help="length of one wrk run")
    p.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    p.add_argument("--connections", default="1,8,32", help="connection counts to load with")
    p.add_argument("--batch-size", type=int, default=1000, help="items per can-send:batch")
    p.add_argument("--batch", type=int, default=1_000, help="commands per execute_many")
    p.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    p.add_argument("--pii-key-file", help="PII key file (needed for PostgreSQL)")
    p.add_argument("--workers", type=int, default=1, help="serve --workers (PostgreSQL only)")
    p.add_argument("--reuse", action="store_true", help="skip the build if the store is there")
    p.add_argument("--with-request-log", action="store_true",
                   help="also measure serve with its request log on (server ledger+log)")  # fmt: skip
    args = p.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    wrk_path()
    stack = uvicorn_stack()  # what the servers below import

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
    procs: list[subprocess.Popen[bytes]] = []
    servers: dict[str, tuple[int, int]] = {}
    try:
        names = ("ledger", "raw", "fastapi", *(["ledger+log"] if args.with_request_log else []))
        for name in names:
            port = free_port()
            if name.startswith("ledger"):
                proc = start_server(db, config, port, args.workers, env, work / "serve.log",
                                    request_log=name == "ledger+log")  # fmt: skip
            else:
                proc = start_baseline(f"{name}_app", db, port, args.workers, env,
                                      work / f"{name}.log")  # fmt: skip
            procs.append(proc)
            servers[name] = (port, proc.pid)
        gets = {n: get_script(LOCATION, args.contacts, TOKEN, 7) for n in servers}
        table = measure(servers, gets, connections, args.rounds, args.seconds)
        body = batch_body(work / "batch.json", args.contacts, args.batch_size)
        posts = {n: post_script(body, TOKEN) for n in servers}
        batch = measure(servers, posts, connections[:2], args.rounds, args.seconds)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=30)

    names = list(servers)
    print()
    print("command:  " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(
        f"machine:  {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", load average {os.getloadavg()[0]:.1f}"
    )
    print(f"store:    {settings.database.engine}, {args.contacts:,} contacts", end="")
    if built:
        print(
            f" (built in {built['write_s']:.1f}s with execute_many batches of {args.batch};"
            f" views caught up with {built['events']:,.0f} events in {built['project_s']:.1f}s)"
        )
    else:
        print(" (reused)")
    print(f"servers:  ledger = dnd-ledger serve; raw = bare ASGI; fastapi = FastAPI def route;"
          f" {args.workers} worker process(es) each, {stack}")  # fmt: skip
    print(f"client:   wrk, {args.rounds} rounds of {args.seconds:g} s per cell, rotating order;"
          " medians")  # fmt: skip
    print("\nGET .../can-send (random contacts, channels and modes)\n")
    print(table.render(names, connections, "ledger"))
    print(f"\nPOST /v1/can-send:batch ({args.batch_size:,} items, one body)\n")
    print(batch.render(names, connections[:2], "ledger"))
    if not args.db:
        print(f"(store kept in {work}; delete it when done)", file=sys.stderr)


def uvicorn_stack() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn with {loop} and {http}"


if __name__ == "__main__":
    main()
