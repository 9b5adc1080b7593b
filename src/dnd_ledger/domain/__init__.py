"""The pure domain: values, policy, the Contact and Address aggregates, decisions.

Nothing in this package imports providers, HTTP or SQL.
"""
