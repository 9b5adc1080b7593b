"""``python -m dnd_ledger.bench``: the benchmark harness (see ``scripts/bench --help``)."""

from dnd_ledger.bench.cli import main
from dnd_ledger.runtime import tune_gc

if __name__ == "__main__":
    tune_gc()  # as the CLI and the service's workers run
    main()
