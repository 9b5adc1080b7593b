"""The use cases: one module per command family, the unit of work, the queries."""
