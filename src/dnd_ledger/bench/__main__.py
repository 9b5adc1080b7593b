"""``python -m dnd_ledger.bench``: the benchmark harness (see ``scripts/bench --help``)."""

from dnd_ledger.bench.cli import main

if __name__ == "__main__":
    main()
