"""Feedback store (CDS Hooks 2.0 §Feedback): SQLAlchemy, SQLite by default, PostgreSQL by URL."""

from service.feedback.store import FeedbackStore

__all__ = ["FeedbackStore"]
