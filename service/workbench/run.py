"""A dry run: one patient's CDS Hooks request through one service, or through every service of a
hook, at a chosen moment, answered exactly as the service answers it (`service.hooks.call_service`)
and explained (each condition's operands and every variable's value) when asked.

Rules: the services of a hook are the content's services answering it, in id order; the request is
parsed and validated as the HTTP route does (an invalid request is the same InvalidRequest); the
moment is an argument, never the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.engine import ContentSet, ServiceDef
from service.fhir.reader import ReaderFactory
from service.hooks.call import call_service
from service.hooks.request import parse_hook_request

# Where card links point in a dry run and in the scenario goldens (the test client's root URL).
LOCAL_ROOT = "http://localhost"


@dataclass(frozen=True)
class ServiceRun:
    """One service's answer to the dry run."""

    service: str
    hook: str
    now: datetime
    body: dict  # the CDS Hooks response ({"cards": [...]}, and the trace extension when explained)
    trace: list[dict]
    variables: dict[str, dict]
    issues: list[dict]

    @property
    def cards(self) -> list[dict]:
        return list(self.body.get("cards", []))


def services_for(content: ContentSet, *, hook: str | None = None, service: str | None = None) -> list[ServiceDef]:
    """The service named, or every service answering `hook`; KeyError naming what exists."""
    if service is not None:
        if service not in content.services:
            raise KeyError(f"no service {service!r}; services: {', '.join(sorted(content.services))}")
        return [content.services[service]]
    found = [s for sid, s in sorted(content.services.items()) if hook in s.hooks]
    if not found:
        hooks = sorted({h for s in content.services.values() for h in s.hooks})
        raise KeyError(f"no service answers {hook!r}; hooks: {', '.join(hooks)}")
    return found


def run_service(content: ContentSet, service: ServiceDef, body: dict, now: datetime, *,
                explain: bool = False, fetchers: ReaderFactory | None = None,
                guidance_base: str | None = LOCAL_ROOT) -> ServiceRun:
    """`body` (a CDS Hooks request) through `service` at `now`."""
    request = parse_hook_request(body, service)
    answer = call_service(content, service, request, now, fetchers, trace=explain, guidance_base=guidance_base)
    return ServiceRun(service.id, request.hook, now, answer.body, answer.trace, answer.variables, answer.issues)
