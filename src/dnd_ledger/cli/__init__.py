"""The ``dnd-ledger`` command line (the root group and its command groups: cli/main.py)."""
