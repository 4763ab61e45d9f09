"""The canonical URLs of every FHIR extension the content uses: one module of names.

Rule: standard extensions (FHIR R4 core and the cqf extensions of the Clinical Reasoning module,
listed in the FHIR extension registry) are used wherever one exists; a project extension is
defined only where none does, under PROJECT_EXTENSION_BASE, and its StructureDefinition is shipped
with the content (`plandefinitions/StructureDefinition-<name>.json`, checked by
`tests/content/test_extension_definitions.py`).  Python code names an extension only through
this module.
"""

from __future__ import annotations

# Standard extensions (http://hl7.org/fhir/R4/extensibility-registry.html).
EXT_VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
EXT_QUERY_PATTERN = "http://hl7.org/fhir/StructureDefinition/cqf-fhirQueryPattern"
EXT_APPLICABILITY_BEHAVIOR = "http://hl7.org/fhir/StructureDefinition/cqf-applicabilityBehavior"
# The CDS Hooks service a PlanDefinition implements (valueUri); required by the CDS Hooks Clinical
# Reasoning IG profile `cdshooksserviceplandefinition`.
EXT_CDS_HOOKS_ENDPOINT = "http://hl7.org/fhir/StructureDefinition/cqf-cdsHooksEndpoint"

# The project's canonical base: the one place it is written in Python.
PROJECT_CANONICAL_BASE = "https://dah-cds.org/fhir"
PROJECT_EXTENSION_BASE = PROJECT_CANONICAL_BASE + "/StructureDefinition/"

# Project extensions (no standard one exists); each one's StructureDefinition says where it goes.
EXT_IS_RECOMMENDED = PROJECT_EXTENSION_BASE + "cds-is-recommended"  # valueBoolean | valueExpression
EXT_OVERRIDE_REASON = PROJECT_EXTENSION_BASE + "cds-override-reason"  # valueCoding, on an action
EXT_PREFETCH_KEY = PROJECT_EXTENSION_BASE + "cds-prefetch-key"  # valueString, on a DataRequirement
EXT_LINK_TYPE = PROJECT_EXTENSION_BASE + "cds-link-type"  # on documentation: valueCode absolute | smart
EXT_APP_CONTEXT = PROJECT_EXTENSION_BASE + "cds-app-context"  # on documentation of a smart link: valueString
EXT_FOR_EACH = PROJECT_EXTENSION_BASE + "cds-for-each"  # valueExpression: apply the action once per item, as %item
EXT_TARGET = PROJECT_EXTENSION_BASE + "cds-target"  # valueExpression: the existing resource an update/remove acts on

# A card action's quiet policy (service.engine.quiet): when its card is not shown again.
EXT_QUIET_AFTER_OVERRIDE = PROJECT_EXTENSION_BASE + "cds-quiet-after-override"  # valueDuration
EXT_QUIET_OVERRIDE_REASON = PROJECT_EXTENSION_BASE + "cds-quiet-override-reason"  # valueCode, repeated
EXT_QUIET_AFTER_ACCEPT = PROJECT_EXTENSION_BASE + "cds-quiet-after-accept"  # valueDuration
EXT_QUIET_SCOPE = PROJECT_EXTENSION_BASE + "cds-quiet-scope"  # valueCode patient | encounter | draft
EXT_QUIET_ONCE_PER_DRAFT = PROJECT_EXTENSION_BASE + "cds-quiet-once-per-draft"  # valueBoolean

# A project extension of the service's own output: the `$apply` trace on the CarePlan (valueString, JSON).
EXT_APPLY_TRACE = PROJECT_EXTENSION_BASE + "cds-apply-trace"

PROJECT_EXTENSIONS: tuple[str, ...] = (
    EXT_IS_RECOMMENDED, EXT_OVERRIDE_REASON, EXT_PREFETCH_KEY, EXT_LINK_TYPE, EXT_APP_CONTEXT, EXT_FOR_EACH, EXT_TARGET,
    EXT_APPLY_TRACE, EXT_QUIET_AFTER_OVERRIDE, EXT_QUIET_OVERRIDE_REASON, EXT_QUIET_AFTER_ACCEPT, EXT_QUIET_SCOPE,
    EXT_QUIET_ONCE_PER_DRAFT,
)
