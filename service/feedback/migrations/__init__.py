"""Alembic migrations of the feedback store's schema (service.feedback.schema); see service.feedback.migrate."""
