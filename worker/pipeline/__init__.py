"""Pipeline services: plain functions over the ports and the ledger; Celery tasks are thin wrappers."""
