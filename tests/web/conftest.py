"""Fixtures of the HTTP tests: a configuration file, a ledger, a TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dnd_ledger.application import DndLedger
from dnd_ledger.settings import Settings, load_config
from dnd_ledger.web.app import create_app
from tests.conftest import Clock
from tests.web.support import write_config


@pytest.fixture
def web_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("DND_LEDGER_PUBLIC_URL", raising=False)
    return load_config(write_config(tmp_path))


@pytest.fixture
def web_ledger(tmp_path: Path, clock: Clock) -> Iterator[DndLedger]:
    app = DndLedger(str(tmp_path / "ledger.db"), pii_key=b"web-test-key-0123456789", clock=clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def client(web_ledger: DndLedger, web_config: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_ledger, web_config)) as c:
        yield c
