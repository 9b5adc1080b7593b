"""The benchmark harness: a synthetic consent workload, measured beside plain-SQL baselines.

``scripts/bench`` (or ``python -m dnd_ledger.bench``) runs it. Every figure is
measured in the same run, on the same database engine, next to its baseline:

- :mod:`dnd_ledger.bench.workload`: the synthetic workload (contacts, inbound
  messages, carrier and Mailgun reports, user set/clear, duplicates, late events);
- :mod:`dnd_ledger.bench.baselines`: plain sqlite3 / psycopg connections, the CRUD
  table and the bare event table;
- :mod:`dnd_ledger.bench.measure`: the phases, each timing the ledger and its baseline;
- :mod:`dnd_ledger.bench.report`: figures, targets, the table for people and the JSON.

The harness only measures; it changes nothing in the ledger.
"""
