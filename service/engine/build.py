"""Build a content set from authored resources: compile, link, lint; all problems are
reported together (ContentErrors naming file and path for each), non-fatal ones kept as
`ContentSet.issues`.  The resources come from a caller (`service.content`: a folder or a FHIR
server): nothing here reads files or the network."""

from __future__ import annotations

from service.engine.compile import compile_resources
from service.engine.conformance import check_service_plan
from service.engine.fhirjson import Resource
from service.engine.link import Aliased, Unsupported, link_activity, link_plan, nest, services
from service.engine.lint import lint_activity, lint_plan, lint_terminology
from service.engine.model import ContentSet
from service.engine.problems import Problems
from service.engine.terminology import Terminology
from service.errors import ContentErrors


def build_content(raws: list[tuple[str, Resource]]) -> ContentSet:
    """A ContentSet from (file name, resource) pairs; raises ContentErrors listing every problem."""
    problems = Problems()
    compiled = compile_resources(raws, problems)
    terminology = Terminology(compiled.valuesets, compiled.conceptmaps)
    lint_terminology(terminology, compiled.valuesets, lambda vs: compiled.files.get(id(vs), "?"), problems)
    libraries = Aliased(compiled.libraries, compiled.aliases)
    activities = Aliased(compiled.activities, compiled.aliases)
    plans = compiled.plans
    plans_by_ref = Aliased(plans, compiled.aliases)
    for act in list(activities.values()):
        try:
            link_activity(act, libraries, problems)
        except Unsupported as exc:
            problems.issue(act.source, str(exc))
            del activities[act.url]
            continue
        lint_activity(act, terminology, problems)
    for plan in list(plans.values()):
        try:
            link_plan(plan, libraries, activities, plans_by_ref, problems)
        except Unsupported as exc:
            problems.issue(plan.source, str(exc))
            del plans[plan.url]
            continue
    nest(plans, plans_by_ref, problems)
    for plan in plans.values():  # linted once nested: its expressions may read the prefetch keys of the plans it nests
        lint_plan(plan, activities, terminology, problems)
        check_service_plan(plan, problems)
    served = services(plans, problems)
    if problems.errors:
        raise ContentErrors(problems.errors)
    return ContentSet(dict(plans), dict(activities), dict(libraries), terminology, served, problems.issues,
                      compiled.resources)
