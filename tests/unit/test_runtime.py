"""The ledger's processes tune CPython's collector (dnd_ledger.runtime)."""

from __future__ import annotations

import gc
import subprocess
import sys

from dnd_ledger.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_what_is_alive_and_raises_the_thresholds() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        assert tune_gc() == before
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_the_program_entry_points_tune_it_and_the_python_api_does_not() -> None:
    probe = (
        "import gc, sys\n"
        "import dnd_ledger.runtime as r\n"
        "from dnd_ledger.application import DndLedger\n"
        "DndLedger('memory:').close()\n"
        "api = gc.get_threshold()\n"
        "sys.argv = ['dnd-ledger', '--version']\n"
        "from dnd_ledger.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(list(api), '|', list(gc.get_threshold()), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    api, cli = done.stderr.strip().splitlines()[-1].split(" | ")
    assert api != str(list(GC_THRESHOLDS))  # the host's own settings
    assert cli == str(list(GC_THRESHOLDS))
