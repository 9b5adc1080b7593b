"""Write sample provider payload files for trying `dnd-ledger ingest` at volume.

    python scripts/backfill_sample.py OUTDIR [--n 3000]

Writes twilio-inbound.jsonl, twilio-status.jsonl and mailgun.jsonl in OUTDIR, built
from the documented payload shapes (the fixtures under tests/data/providers), with
varied phones, addresses, bodies and error codes, a few exact duplicates and a few
malformed lines, so the summary shows every outcome.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "providers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--n", type=int, default=3000, help="payloads in all (default 3000)")
    args = parser.parse_args()
    rnd = random.Random(7)
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    inbound = json.loads((DATA / "twilio/inbound-sms.json").read_text())
    status = json.loads((DATA / "twilio/status-undelivered-30003.json").read_text())
    mailgun = json.loads((DATA / "mailgun/webhook-complained.json").read_text())
    per = args.n // 3
    lines: dict[str, list[str]] = {"twilio-inbound": [], "twilio-status": [], "mailgun": []}
    for i in range(per):
        phone = f"+1415555{rnd.randrange(10000):04d}"
        body = rnd.choice(
            ["STOP", "Stop!", "START", "please stop texting me", "see you at 5", "UNSUBSCRIBE"]
        )
        lines["twilio-inbound"].append(json.dumps(
            {k: v for k, v in inbound.items() if k != "OptOutType"}
            | {"MessageSid": f"SM{i:032x}", "SmsSid": f"SM{i:032x}", "From": phone, "Body": body}
        ))  # fmt: skip
        code = rnd.choice(["30003", "30004", "30005", "30006", "30007", "30034", "21610", ""])
        form = status | {
            "MessageSid": f"SX{i:032x}",
            "SmsSid": f"SX{i:032x}",
            "To": phone,
            "ErrorCode": code,
        }
        lines["twilio-status"].append(json.dumps({k: v for k, v in form.items() if v != ""}))
        event = json.loads(json.dumps(mailgun))
        kind = rnd.choice(
            ["complained", "unsubscribed", "failed-permanent", "failed-temporary", "delivered"]
        )
        event["signature"]["token"] = f"{i:050x}"
        data = event["event-data"]
        data["id"], data["recipient"] = f"evt{i}", f"user{rnd.randrange(3000)}@example.com"
        data["event"] = "failed" if kind.startswith("failed") else kind
        if kind.startswith("failed"):
            data["severity"] = kind.split("-")[1]
            data["reason"] = rnd.choice(
                ["bounce", "generic", "suppress-bounce", "suppress-complaint"]
            )
        lines["mailgun"].append(json.dumps(event))
    for name, items in lines.items():
        items += rnd.sample(items, max(1, len(items) // 50))  # provider retries
        items.append("{this line is not json")
        rnd.shuffle(items)
        (out / f"{name}.jsonl").write_text("\n".join(items) + "\n")
        print(out / f"{name}.jsonl", len(items), "lines")


if __name__ == "__main__":
    main()
