"""The prefetch queries ask the FHIR server for every record the content reads.

A query pattern that lists codes (`code=...`) is a filter: a code the expressions read but the
query omits is never fetched from a FHIR server, and the rule silently sees no data.  So every
`resources(type, code-or-ValueSet...)` read of a filtered type must have its codes in the query.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from tests.conftest import CONTENT

READ = re.compile(r"resources\('([A-Za-z]+)'((?:\s*,\s*'[^']+')+)\)")


def reads(content) -> dict[str, set[str]]:
    """resource type -> every system|code token the content's expressions read for it."""
    out: dict[str, set[str]] = {}
    for path in CONTENT.glob("*.json"):
        for rtype, args in READ.findall(path.read_text()):
            for arg in re.findall(r"'([^']+)'", args):
                tokens = content.terminology.expand(arg) if "/ValueSet/" in arg else {arg}
                out.setdefault(rtype, set()).update(tokens)
    return out


def query_codes() -> dict[str, set[str]]:
    """resource type -> codes its prefetch query pattern filters on (types without a code filter absent)."""
    library = json.loads((CONTENT / "Library-dah-case-features.json").read_text())
    out = {}
    for dr in library["dataRequirement"]:
        for ext in dr.get("extension", []):
            if ext["url"].endswith("cqf-fhirQueryPattern"):
                codes = parse_qs(urlsplit(ext["valueString"]).query).get("code")
                if codes:
                    out[dr["type"]] = set(codes[0].split(","))
    return out


def test_filtered_queries_cover_every_code_read(content):
    filtered = query_codes()
    assert "Observation" in filtered  # the observations query does filter by code
    read = reads(content)
    for rtype, codes in filtered.items():
        missing = sorted(read.get(rtype, set()) - codes)
        assert not missing, f"{rtype} prefetch query omits codes the content reads: {missing}"


def test_the_prefetch_templates_keep_to_the_spec(content):
    """CDS Hooks 2.0 §Prefetch tokens (cds-hooks_2.0#55-#57, #59; hook library 1.0.1: no
    `draftOrders` or `selections` token) and §Prefetch query restrictions (#58, SHOULD) for the
    templates this content announces in discovery - the same checks tests/conformance runs on the
    synthetic content.  Known deviation (REQUIREMENTS.md #58): the `encounter` and `medications`
    templates `_include` the encounter's location and a MedicationRequest's medication."""
    from service.hooks.discovery import discovery
    from tests.conformance.helpers import TOKEN, TOKEN_FIELDS, query_restriction_findings, tokens

    services = discovery(content)["services"]
    assert {s["hook"] for s in services} == set(TOKEN_FIELDS)
    deviations = {}
    for service in services:
        for key, template in service["prefetch"].items():
            assert tokens(template) and not re.search(r"[{}]", TOKEN.sub("", template)), (service["id"], key)
            for token in tokens(template):
                field = token.removeprefix("context.")
                assert token.startswith("context.") and field in TOKEN_FIELDS[service["hook"]], (service["id"], token)
            findings = query_restriction_findings(template)
            assert [f for f in findings if not f.startswith("_include=")] == [], (service["id"], key, findings)
            if findings:
                deviations[key] = findings
    assert set(deviations) == {"encounter", "medications"}, deviations
