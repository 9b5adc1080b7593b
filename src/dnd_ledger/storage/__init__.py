"""Storage adapters: the only code that knows eventsourcing's recorders and SQL."""
