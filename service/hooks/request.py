"""A CDS Hooks service call as typed fields (CDS Hooks 2.0 §Calling a CDS Service > HTTP Request),
parsed once, after the body passed validation (service.hooks.validation).

Rules: the hook is the one the body names when the service answers it, else the service's own;
hook-specific context fields are validated for the hooks that define them, and another hook's
context may carry anything under these names: only the shapes the engine reads are kept
(`draftOrders` a Bundle object, `selections` strings).  The context as sent stays available to
prefetch tokens (`{{context.<field>}}`).  The access token appears in no repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from service.engine import ServiceDef
from service.hooks.validation import validate_request


@dataclass(frozen=True)
class FhirAuthorization:
    """§Passing the Access Token: the bearer token for `fhirServer` (never shown)."""

    access_token: str = field(repr=False)
    token_type: str | None = None
    scope: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class HookContext:
    patient_id: str
    user_id: str | None = None
    encounter_id: str | None = None
    draft_orders: dict | None = None
    selections: tuple[str, ...] = ()
    sent: Mapping[str, Any] = field(default_factory=dict, repr=False)  # as sent, for prefetch tokens


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: HookContext
    prefetch: Mapping[str, Any] = field(default_factory=dict, repr=False)
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = None

    @property
    def access_token(self) -> str | None:
        return self.fhir_authorization.access_token if self.fhir_authorization else None


def parse_hook_request(body: Any, service: ServiceDef) -> HookRequest:
    """The call `body` makes to `service`; InvalidRequest listing every protocol violation."""
    named = body.get("hook") if isinstance(body, dict) else None
    hook = named if isinstance(named, str) and named in service.hooks else service.hook
    validate_request(body, hook)
    context = body["context"]
    drafts = context.get("draftOrders")
    selections = context.get("selections")
    auth = body.get("fhirAuthorization")
    return HookRequest(
        hook=hook,
        hook_instance=body["hookInstance"],
        context=HookContext(
            patient_id=context["patientId"],
            user_id=context.get("userId"),
            encounter_id=context.get("encounterId"),
            draft_orders=drafts if isinstance(drafts, dict) else None,
            selections=tuple(s for s in selections if isinstance(s, str)) if isinstance(selections, list) else (),
            sent=MappingProxyType(context),
        ),
        prefetch=MappingProxyType(body.get("prefetch") or {}),
        fhir_server=body.get("fhirServer") or None,
        fhir_authorization=FhirAuthorization(auth["access_token"], auth.get("token_type"), auth.get("scope"),
                                             auth.get("subject")) if isinstance(auth, dict) else None,
    )
