"""The HTTP service (FastAPI): provider webhooks, the decision API and the audit page.

Kept light: ``dnd_ledger.web.app`` (FastAPI, uvicorn) is imported only by the
``serve`` command and by uvicorn's worker processes, not by every CLI command.
"""
