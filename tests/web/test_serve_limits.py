"""``serve`` limits (issue 13, items 1, 12 and 13): uvicorn's options come from the
configuration, proxies are trusted only when listed, and a real server answers an
unauthenticated upload from its headers and refuses connections past its limit."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from click.testing import CliRunner

from dnd_ledger.cli.main import cli as dnd_ledger_cli
from dnd_ledger.settings import load_config
from dnd_ledger.web.config import serve_options
from tests.web.support import L, write_config
from tests.web.test_serve import serving


def test_defaults_trust_no_proxy_and_bound_slow_clients(tmp_path: Path) -> None:
    options = serve_options(load_config(write_config(tmp_path)))
    assert options == {
        "http": "dnd_ledger.web.http_protocol:PROTOCOL",
        "timeout_keep_alive": 5,
        "limit_concurrency": 1000,
        "h11_max_incomplete_event_size": 16384,
        "proxy_headers": False,
        "forwarded_allow_ips": None,
    }


def test_serve_passes_the_configured_limits_to_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path, keep_alive_seconds="3", max_concurrency="50", max_header_bytes="8192",
        forwarded_allow_ips='["10.0.0.7"]',
    )  # fmt: skip
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    db = str(tmp_path / "l.db")
    runner = CliRunner()
    assert runner.invoke(dnd_ledger_cli, ["--db", db, "init"]).exit_code == 0
    result = runner.invoke(dnd_ledger_cli, ["--db", db, "serve", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] == 3
    assert seen["limit_concurrency"] == 50
    assert seen["h11_max_incomplete_event_size"] == 8192
    assert seen["proxy_headers"] is True
    assert seen["forwarded_allow_ips"] == ["10.0.0.7"]


def _open(base: str) -> socket.socket:
    parts = urlsplit(base)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)


@pytest.mark.slow
def test_a_real_server_refuses_uploads_from_headers_and_connections_past_its_limit(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, max_concurrency="4")
    with serving(str(tmp_path / "l.db"), config, log=tmp_path / "serve.log") as base:
        # 100 MB announced, no token, not a byte of body sent: the 401 comes back anyway.
        with _open(base) as s:
            s.sendall(
                f"POST /v1/locations/{L}/contacts HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n".encode()
            )
            assert s.recv(65536).startswith(b"HTTP/1.1 401 ")
        # Slow clients that never finish their headers hold the connections...
        slow = [_open(base) for _ in range(6)]
        try:
            for s in slow:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: unfinished
            # ...but only up to the limit: past it, the server says so instead of queueing.
            with _open(base) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 503 ")
        finally:
            for s in slow:
                s.close()


def _head(base: str, request: bytes) -> bytes:
    with _open(base) as s:
        s.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.mark.slow
def test_a_real_server_caps_the_request_head_at_max_header_bytes(tmp_path: Path) -> None:
    config = write_config(tmp_path, max_header_bytes="4096")
    with serving(str(tmp_path / "l.db"), config, log=tmp_path / "serve.log") as base:
        fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n"
        assert _head(base, fits).startswith(b"HTTP/1.1 200 ")
        over = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 6000 + b"\r\n\r\n"
        assert _head(base, over).startswith(b"HTTP/1.1 400 ")
        # A head that never ends is refused once it passes the cap, not held in memory.
        unfinished = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 6000
        assert _head(base, unfinished).startswith(b"HTTP/1.1 400 ")
