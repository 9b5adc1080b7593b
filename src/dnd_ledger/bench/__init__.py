"""The benchmark harness: a synthetic consent workload, measured beside plain-SQL baselines.

``scripts/bench`` (or ``python -m dnd_ledger.bench``) runs it. Every figure is
measured in the same run, on the same database engine, next to its baseline, in
wall time and in CPU time:

- :mod:`dnd_ledger.bench.workload`: the synthetic workload (contacts, inbound
  messages, carrier and Mailgun reports, user set/clear, duplicates, late events);
- :mod:`dnd_ledger.bench.pipeline` (tables in :mod:`~dnd_ledger.bench.pipeline_tables`):
  the same-pipeline CRUD baseline, the product as a plain-table service;
- :mod:`dnd_ledger.bench.baselines`: plain sqlite3 / psycopg connections, the bare CRUD
  table and the bare event table (the physical limits);
- :mod:`dnd_ledger.bench.context`: options, the stores and the timed steps;
  :mod:`~dnd_ledger.bench.write_phases` and :mod:`~dnd_ledger.bench.read_phases`:
  the phases; :mod:`dnd_ledger.bench.measure`: a run, the phases in order;
- :mod:`dnd_ledger.bench.timing`: wall, CPU and database-server CPU time;
- :mod:`dnd_ledger.bench.report`: figures, targets, the table for people and the JSON.

The harness only measures; it changes nothing in the ledger.
"""
