"""The container and service files stay true: every command they run is a real command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("dnd-ledger")


def runs(args: list[str]) -> None:
    """``dnd-ledger ARGS --help`` works: the command and every option it names exist."""
    done = subprocess.run([str(EXE), *args, "--help"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, (args, done.stderr)
    for option in (a for a in args if a.startswith("--")):
        assert option in done.stdout, (args, option)


def test_compose_services_run_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "init", "ledger", "projections"} <= set(services)
    for name, service in services.items():
        if name == "db":
            continue
        runs(service["command"])
    assert "--workers" in services["ledger"]["command"]


def test_dockerfile_runs_serve_as_a_user_with_a_readiness_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") == 2  # a build stage and a slim runtime stage
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert "/readyz" in text.split("HEALTHCHECK", 1)[1]
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry == ["dnd-ledger"]
    runs(cmd)


def test_systemd_unit_runs_serve() -> None:
    text = (ROOT / "deploy" / "dnd-ledger.service").read_text()
    start = re.search(r"^ExecStart=(\S+) (.+)$", text, re.M)
    assert start is not None
    assert start.group(1).endswith("/dnd-ledger")
    runs(start.group(2).split())


def test_license_matches_the_package_metadata() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("path", ["Dockerfile", "compose.yaml", "deploy/dnd-ledger.service"])
def test_no_secret_is_baked_into_the_files(path: str) -> None:
    text = (ROOT / path).read_text().lower()
    assert "auth_token" not in text
    assert "signing_key =" not in text
