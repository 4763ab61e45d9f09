"""Trust in CDS clients (CDS Hooks 2.0 §Trusting CDS Clients): the trusted-clients file, their
keys, and verification of the JWT sent with every call.  No Flask here.

Start-up rule (`authentication`): with `trusted_clients` configured, every call that carries or
asks for patient data needs a valid token; without it the service runs open, which is allowed
only when it is bound to a loopback host (`host` 127.0.0.1, localhost or ::1), and says so loudly
in the log; on any other host it refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from service.auth.clients import TrustedClient, TrustedClients, TrustedClientsError, load_trusted_clients
from service.auth.tokens import FirstUse, InvalidToken, TokenVerifier
from service.config import Config
from service.errors import ConfigurationError
from service.fhir.outbound import is_loopback_host

__all__ = ["InvalidToken", "TokenVerifier", "TrustedClient", "TrustedClients", "TrustedClientsError",
           "authentication", "load_trusted_clients"]

log = logging.getLogger("service.auth")


def authentication(cfg: Config, first_use: FirstUse, clock: Callable[[], datetime]) -> TokenVerifier | None:
    """The verifier for the configured trusted clients; None = open (loopback only)."""
    if cfg.public_base_url:
        parts = urlsplit(cfg.public_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(f"public_base_url (CDS_PUBLIC_BASE_URL) must be an absolute http(s) URL "
                                     f"without query, got {cfg.public_base_url!r}")
    if cfg.trusted_clients:
        clients = load_trusted_clients(cfg.trusted_clients)
        log.info("trusted CDS clients (%s): %s", clients.file, ", ".join(sorted(clients.by_iss)))
        if not cfg.public_base_url:
            log.warning("CDS_PUBLIC_BASE_URL is not set: token audiences are checked against the URL each request "
                        "names in its Host header; set it to the URL the EHRs call")
        return TokenVerifier(clients, first_use, clock, cfg.jwt_clock_skew_seconds,
                             cfg.jwt_max_lifetime_seconds or None)
    if not is_loopback_host(cfg.host):
        raise ConfigurationError(
            f"refusing to start: host {cfg.host!r} is not a loopback address and no trusted CDS clients are "
            "configured; set CDS_TRUSTED_CLIENTS to a trusted-clients file (see README, 'Trusting EHRs'), "
            "or bind to 127.0.0.1")
    log.warning("OPEN MODE: no trusted CDS clients configured (CDS_TRUSTED_CLIENTS); every caller on this "
                "machine is served without a token. Bound to loopback host %s only; never expose this service "
                "without a trusted-clients file.", cfg.host)
    return None
