"""Load HTTP servers with ``wrk`` and report req/s, p50, p99 and server CPU time.

Used by ``scripts/measure_http.py``: every server is loaded by the same client
(``wrk``, compiled, from Debian's ``wrk`` package), at each connection count, in
an order that rotates from round to round so drift on a shared machine falls on
every server alike. Figures are medians over rounds; ratios are taken within a
round and their median reported.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %f %f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""

_RANDOM_GET = """
math.randomseed(%(seed)d)
local channels = {"email", "sms", "call", "fb", "gmb", "whatsapp"}
local modes = {"automated", "manual"}
request = function()
  local path = string.format(
    "/v1/locations/%(location)s/contacts/c-%%07d/can-send?channel=%%s&mode=%%s",
    math.random(0, %(contacts)d - 1), channels[math.random(1, 6)], modes[math.random(1, 2)])
  return wrk.format("GET", path, {["Authorization"] = "Bearer %(token)s"})
end
"""

_POST = """
wrk.method = "POST"
wrk.path = "/v1/can-send:batch"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("%(body)s", "rb")
wrk.body = f:read("*a")
f:close()
"""


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is needed as the load client: apt-get install -y wrk")
    return found


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx/3xx responses plus socket errors
    cpu_s: float  # the server's CPU time (all its processes) during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def get_script(location: str, contacts: int, token: str, seed: int) -> str:
    return _RANDOM_GET % {"location": location, "contacts": contacts, "token": token,
                          "seed": seed} + _DONE  # fmt: skip


def post_script(body_file: Path, token: str) -> str:
    return _POST % {"body": body_file, "token": token} + _DONE


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    ticks = 100.0
    tree: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        child = int(stat.parent.name)
        tree.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo.extend(tree.get(p, []))
    return total


def run_wrk(port: int, script: str, connections: int, seconds: float, server_pid: int) -> Run:
    threads = max(1, min(2, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    argv = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--timeout", "10s", "-s", f.name, f"http://127.0.0.1:{port}"]  # fmt: skip
    cpu0 = process_cpu(server_pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    cpu = process_cpu(server_pid) - cpu0
    Path(f.name).unlink()
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKRESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    n, micros, p50, p99, status, sock = line.split()[1:]
    return Run(int(n), int(micros) / 1e6, float(p50) / 1000, float(p99) / 1000,
               int(status) + int(sock), cpu)  # fmt: skip


@dataclass
class Table:
    """Runs per (server, connections), in the order they were made."""

    runs: dict[tuple[str, int], list[Run]] = field(default_factory=dict)

    def add(self, server: str, connections: int, run: Run) -> None:
        self.runs.setdefault((server, connections), []).append(run)

    def median(self, server: str, connections: int, attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in self.runs[(server, connections)])

    def ratio(self, a: str, b: str, connections: int) -> float:
        """Median over rounds of a's req/s over b's in the same round."""
        pairs = zip(self.runs[(a, connections)], self.runs[(b, connections)], strict=True)
        return statistics.median(x.rps / y.rps for x, y in pairs)

    def failed(self, server: str) -> int:
        return sum(r.failed for (s, _), runs in self.runs.items() if s == server for r in runs)

    def render(self, servers: list[str], connections: list[int], subject: str) -> str:
        head = ["connections"] + [f"{s} req/s (p50, p99; CPU ms/req)" for s in servers]
        head += [f"{subject} / {s}" for s in servers if s != subject]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in connections:
            cells = [str(c)]
            for s in servers:
                rps = self.median(s, c, "rps")
                cpu = statistics.median(
                    1000 * r.cpu_s / max(1, r.requests) for r in self.runs[(s, c)]
                )
                cells.append(
                    f"{rps:,.0f} ({self.median(s, c, 'p50_ms'):.2f} ms,"
                    f" {self.median(s, c, 'p99_ms'):.1f} ms; {cpu:.2f})"
                )
            cells += [f"{self.ratio(subject, s, c):.2f}x" for s in servers if s != subject]
            lines.append("| " + " | ".join(cells) + " |")
        fails = ", ".join(f"{s} {self.failed(s)}" for s in servers)
        lines.append(f"failed requests (non-2xx or socket errors): {fails}")
        return "\n".join(lines)
