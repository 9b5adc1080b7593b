"""Tracked projections of the notification log: status, address index, audit trail, stats."""
