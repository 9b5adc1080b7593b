"""dnd-ledger: an event-sourced consent (Do-Not-Disturb) ledger."""

__version__ = "0.1.0"
