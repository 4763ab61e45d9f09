"""Security headers on every response (OWASP Secure Headers; RFC 9111 for caching).

- every response: `X-Content-Type-Options: nosniff` (a body is only what its Content-Type says)
  and `Referrer-Policy: no-referrer`;
- API responses (everything that is not an HTML page: cards, OperationOutcomes, discovery):
  `Cache-Control: no-store` (cards and errors may carry patient data; no cache keeps them) and
  `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` (JSON is never a page);
- HTML pages (the rule pages) keep the policy they set themselves (service.web.guidance: nothing
  loaded from elsewhere, no script).
"""

from __future__ import annotations

from flask import Flask, Response

API_CSP = "default-src 'none'; frame-ancestors 'none'"


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype != "text/html":
        headers["Cache-Control"] = "no-store"
        headers.setdefault("Content-Security-Policy", API_CSP)
    return response


def register(app: Flask) -> None:
    app.after_request(add_security_headers)
