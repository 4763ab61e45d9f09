"""What a running service holds: configuration, loaded content, feedback store, clock, FHIR access.

Kept at the top of service/: app.py builds it, web reads it and the content refresh swaps its
content, so it belongs to none of the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.auth import TokenVerifier
from service.config import Config
from service.content.status import ContentStatus
from service.engine import ContentSet
from service.feedback import FeedbackStore
from service.fhir.reader import ReaderFactory


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    config: Config
    content: ContentSet
    store: FeedbackStore
    fetcher_factory: ReaderFactory
    clock: Callable[[], datetime] = utc_now
    # Verifies the calling CDS client's JWT; None = open (no trusted clients, loopback only).
    authenticator: TokenVerifier | None = None
    # What is served and the last refused reload (GET /status/content).
    content_status: ContentStatus | None = None
