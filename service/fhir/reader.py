"""What the data layer reads an EHR's FHIR server through (service.fhir.client.FhirClient is one).

- `fetch(url)`: a read (`Type/id`) or a search with all its pages, relative to the server's base;
- `rest_of(bundle)`: a searchset page already held (a paginated prefetch) with its further pages.
A reader raises service.errors.FhirAccessError types only.  A factory makes the reader of one
call from the FHIR server's base URL and the bearer token the caller gave (or None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class FhirReader(Protocol):
    def fetch(self, url: str) -> dict: ...

    def rest_of(self, bundle: dict) -> dict: ...


ReaderFactory = Callable[[str, "str | None"], FhirReader]
