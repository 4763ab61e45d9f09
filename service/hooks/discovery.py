"""CDS Hooks 2.0 §Discovery: one entry per (service id, hook) of the loaded content.

Beyond 2.0: `usageRequirements` from PlanDefinition.usage, and the 3.0-ballot `version`
(the specification version implemented) and `hookVersion` of each hook; the FHIR version of
prefetch templates and suggested resources is declared in `extension`."""

from __future__ import annotations

from typing import Any

from service.data import templates
from service.engine import ContentSet

SPECIFICATION_VERSION = "2.0.1"
# Versions of the hook definitions this service implements (cds-hooks.org hook library).
HOOK_VERSIONS = {"patient-view": "1.0", "order-select": "1.0", "order-sign": "1.1"}
FHIR_VERSION_EXTENSION = "org.hl7.fhir.version"


def discovery(content: ContentSet) -> dict[str, Any]:
    services: list[dict[str, Any]] = []
    for sid, svc in sorted(content.services.items()):
        prefetch = templates(svc.plan, content.terminology)
        for hook in svc.hooks:
            entry: dict[str, Any] = {"hook": hook, "id": sid, "description": svc.description}
            if svc.title:
                entry["title"] = svc.title
            if prefetch:
                entry["prefetch"] = prefetch
            if svc.plan.raw.get("usage"):
                entry["usageRequirements"] = svc.plan.raw["usage"]
            entry["version"] = SPECIFICATION_VERSION
            if hook in HOOK_VERSIONS:
                entry["hookVersion"] = HOOK_VERSIONS[hook]
            entry["extension"] = {FHIR_VERSION_EXTENSION: "4.0.1"}
            services.append(entry)
    return {"services": services}
