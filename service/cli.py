"""Command line for operators and informaticians:
`dah-cds serve|migrate|validate|publish|feedback-report|run|test`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from service.config import load_config


def _validate(args) -> int:
    from service.workbench.report import validate_folder

    folder = args.folder or load_config().content_dir
    report = validate_folder(folder)
    for problem in report.warnings:
        for line in problem.lines():
            print(line)
    if report.errors or report.content is None:
        for problem in report.errors:
            for line in problem.lines():
                print(line, file=sys.stderr)
        print(f"{len(report.errors)} error(s) in {folder}", file=sys.stderr)
        return 1
    content = report.content
    print(f"OK {folder}: {len(content.plans)} PlanDefinition, {len(content.activities)} ActivityDefinition, "
          f"{len(content.libraries)} Library, {len(content.terminology.urls())} ValueSet; "
          f"services: {', '.join(sorted(content.services)) or 'none'}")
    return 0


def _serve(args) -> int:
    from service.errors import ConfigurationError
    from service.feedback.migrate import SchemaError
    from service.serving import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    try:
        serve(load_config(overrides))  # gunicorn gthread workers (service.serving); returns when stopped
    except (ConfigurationError, SchemaError) as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    return 0


def _publish(args) -> int:
    from service.content.publish import PublishError, Skipped, load_patients, publish_content
    from service.errors import ContentErrors, FhirAccessError
    from service.fhir.client import FhirClient

    cfg = load_config()
    base_url = args.fhir_base_url or cfg.content_fhir_base_url
    if not base_url:
        print("ERROR --fhir-base-url (or CDS_CONTENT_FHIR_BASE_URL) is required", file=sys.stderr)
        return 2
    token = args.token or cfg.content_fhir_token or None
    try:
        client = FhirClient(base_url, access_token=token, timeout=args.timeout, retries=cfg.fhir_retries)
        if not args.no_content:
            folder = args.content or cfg.content_dir
            report = publish_content(client, folder)
            print(f"PUT {report.summary()} from {folder} to {client.base_url}")
        for result in load_patients(client, args.patients or [], args.id_mode, args.id_prefix, args.timeout):
            if isinstance(result, Skipped):
                print(f"SKIPPED {result.source}: {result.reason}")
                continue
            print(f"LOADED {result.summary()}" + (f"; {', '.join(result.patients)}" if result.patients else ""))
    except ContentErrors as exc:
        for err in exc.errors:
            print(f"ERROR {err}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in the content: nothing published", file=sys.stderr)
        return 1
    except PublishError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    except FhirAccessError as exc:
        print(f"ERROR {exc.message}", file=sys.stderr)
        return 2
    return 0


def _migrate(args) -> int:
    from service.feedback.migrate import SchemaError, upgrade

    try:
        revision = upgrade(args.database_url or load_config().database_url)
    except SchemaError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    print(f"OK the feedback database is at schema revision {revision} (the newest)")
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _feedback_report(args) -> int:
    from service.feedback import FeedbackStore
    from service.feedback.report import rule_report, suggestion_report, to_csv

    if args.since and args.until and args.since > args.until:
        print("ERROR --since is after --until", file=sys.stderr)
        return 2
    store = FeedbackStore(args.database_url or load_config().database_url)
    if args.by == "suggestion":
        rows = suggestion_report(store, args.since, args.until)
    else:
        rows = rule_report(store, args.since, args.until, split=() if args.by == "rule" else (args.by,))
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        sys.stdout.write(to_csv(rows))
    elif args.by == "suggestion":
        print(f"{'rule':<24}{'offered':>8}{'accepted':>10}{'accept%':>9}  suggestion")
        for r in rows:
            print(f"{r['rule']:<24}{r['offered']:>8}{r['accepted']:>10}{100 * r['acceptance_rate']:>8.1f}%  "
                  f"{r['suggestion']}")
    else:
        split = {"service": "service", "week": "week"}.get(args.by)
        head = f"{split:<28}" if split else ""
        print(f"{'rule':<24}{head}{'issued':>8}{'accepted':>10}{'overridden':>12}{'accept%':>9}{'override%':>10}"
              "  override reasons")
        for r in rows:
            reasons = ", ".join(f"{reason} {n}" for reason, n in r["override_reasons"].items())
            cell = f"{str(r[split]):<28}" if split else ""
            print(f"{str(r['rule']):<24}{cell}{r['issued']:>8}{r['accepted']:>10}{r['overridden']:>12}"
                  f"{100 * r['acceptance_rate']:>8.1f}%{100 * r['override_rate']:>9.1f}%  {reasons}")
    return 0


def _run(args) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from service.content import load_folder
    from service.errors import ContentErrors, ServiceError
    from service.workbench import patients
    from service.workbench.run import run_service
    from service.workbench.show import cards_text, explanation_text

    try:
        content = load_folder(args.content or load_config().content_dir)
    except ContentErrors as exc:
        for err in exc.errors:
            print(f"ERROR {err}", file=sys.stderr)
        return 1
    try:
        now = patients.parse_moment(args.now) if args.now else None
        drafts = json.loads(Path(args.draft_orders).read_text(encoding="utf-8")) if args.draft_orders else None
        if drafts is not None and drafts.get("resourceType") != "Bundle":
            drafts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": drafts}]}
        jobs = _run_jobs(args, content, now, drafts)
    except (OSError, ValueError, KeyError) as exc:
        print(f"ERROR {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    fetchers = None
    if args.fhir_server:
        from service.fhir.client import FhirClient

        def fetchers(base_url: str, token: str | None):  # the request's server, with the token given here
            return FhirClient(base_url, access_token=args.token, timeout=args.timeout)

    runs = []
    for job in jobs:
        try:
            runs.append(run_service(content, job.service, job.body, job.now or datetime.now(UTC), explain=args.trace,
                                    fetchers=fetchers))
        except ServiceError as exc:
            print(f"ERROR {job.service.id}: {exc.message}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps([{"service": r.service, "hook": r.hook, "now": r.now.isoformat(), "response": r.body}
                          for r in runs], indent=2, ensure_ascii=False))
        return 0
    for r in runs:
        print("\n".join(cards_text(r)))
        if args.trace:
            print("\n".join(["", *explanation_text(r)]))
        print()
    return 0


def _run_jobs(args, content, now, drafts):
    """The dry run's jobs from the command line (service.workbench.jobs)."""
    from pathlib import Path

    from service.workbench import jobs, patients

    common = {"hook": args.hook, "service": args.service, "now": now, "drafts": drafts}
    if args.fhir_server:
        return jobs.server_jobs(content, args.fhir_server, args.patient, encounter=args.encounter, **common)
    if not args.source:
        raise ValueError("give a scenario case or Bundle file, or --fhir-server URL --patient ID")
    document = json.loads(Path(args.source).read_text(encoding="utf-8"))
    if patients.is_case(document):
        return jobs.case_jobs(content, patients.read_case(Path(args.source)), shift=args.shift, **common)
    return jobs.bundle_jobs(content, document, encounter=args.encounter, **common)


def _test(args) -> int:
    from pathlib import Path

    from service.content import load_folder
    from service.errors import ContentErrors
    from service.workbench import scenarios

    folder = Path(args.content or load_config().content_dir)
    try:
        content = load_folder(folder)
    except ContentErrors as exc:
        for err in exc.errors:
            print(f"ERROR {err}", file=sys.stderr)
        return 1
    paths = scenarios.find_cases(folder / "tests", args.rules)
    if not paths:
        print(f"ERROR no scenario case of {' '.join(args.rules)} under {folder / 'tests'}", file=sys.stderr)
        return 2
    failed = accepted = 0
    for path in paths:
        outcome = scenarios.check(content, path)
        if outcome.passed:
            if args.verbose:
                print(f"PASS {outcome.case.id}")
            continue
        failed += 1
        print(f"FAIL {outcome.case.id}: {outcome.case.description}")
        for problem in outcome.problems:
            print(f"  ! {problem}")
        for line in outcome.diff[1:] if outcome.golden is not None else outcome.diff:
            print(line if outcome.golden is not None else "  " + line)
        if args.accept:
            if not outcome.acceptable:
                print("  not accepted: the answer breaks the case's expectations")
            elif args.yes or _confirm(f"  write this answer as the golden {outcome.case.golden.name}? [y/N] "):
                scenarios.accept(outcome)
                accepted += 1
                print(f"  ACCEPTED {outcome.case.golden}")
    passed = len(paths) - failed
    print(f"{passed} passed, {failed} failed" + (f", {accepted} golden(s) written" if args.accept else "")
          + f" ({len(paths)} case(s))")
    return 0 if failed == accepted else 1


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(question + "no (not a terminal: use --yes)")
        return False
    return input(question).strip().lower() in ("y", "yes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dah-cds")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="load and lint a content folder")
    p.add_argument("folder", nargs="?")
    p.set_defaults(fn=_validate)
    p = sub.add_parser("serve", help="serve under gunicorn with threaded workers (CDS_HOST, CDS_PORT, CDS_WORKERS, "
                                     "CDS_THREADS, CDS_REQUEST_READ_TIMEOUT_SECONDS)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=_serve)
    p = sub.add_parser("migrate", help="bring the feedback database (CDS_DATABASE_URL) to the newest schema revision")
    p.add_argument("--database-url", help="database URL (default CDS_DATABASE_URL)")
    p.set_defaults(fn=_migrate)
    p = sub.add_parser("publish", help="PUT the content (and load sample patients) to a FHIR server")
    p.add_argument("--fhir-base-url", help="FHIR base URL (default CDS_CONTENT_FHIR_BASE_URL)")
    p.add_argument("--token", help="bearer token (default CDS_CONTENT_FHIR_TOKEN)")
    p.add_argument("--content", help="content folder (default CDS_CONTENT_DIR)")
    p.add_argument("--no-content", action="store_true", help="load only the --patients files")
    p.add_argument("--patients", nargs="+", metavar="FILE_OR_DIR",
                   help="transaction/collection Bundles, resources or scenario case files to load")
    p.add_argument("--id-mode", choices=("auto", "keep", "server"), default="auto",
                   help="keep the files' ids (PUT), let the server assign them (POST), or keep unless refused")
    p.add_argument("--id-prefix", default="", help="put this in front of every kept id")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    p.set_defaults(fn=_publish)
    p = sub.add_parser("feedback-report", help="acceptance and override rates and override reasons per rule")
    p.add_argument("--since", type=_date, help="cards issued on or after this UTC day (YYYY-MM-DD)")
    p.add_argument("--until", type=_date, help="cards issued on or before this UTC day (YYYY-MM-DD)")
    p.add_argument("--by", choices=("rule", "service", "week", "suggestion"), default="rule",
                   help="rows per rule (default), per rule and service, per rule and ISO week, or per suggestion")
    p.add_argument("--database-url", help="the feedback store (default CDS_DATABASE_URL)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")
    p.set_defaults(fn=_feedback_report)
    p = sub.add_parser("run", help="one patient through a hook or a service at a chosen moment: the cards, and why")
    p.add_argument("source", nargs="?", help="a scenario case file (plandefinitions/tests/...) or a FHIR Bundle file")
    p.add_argument("--hook", help="every service answering this hook (patient-view, order-select, order-sign)")
    p.add_argument("--service", help="one CDS service id (default for a case: its own)")
    p.add_argument("--now", help="the moment of the call, ISO 8601 (default: now; for a case: its own `now`)")
    p.add_argument("--shift", action="store_true",
                   help="a case: move its dates so that its `now` becomes --now (default: the present)")
    p.add_argument("--draft-orders", help="a Bundle (or one resource) of draft orders, for order-select/order-sign")
    p.add_argument("--encounter", help="context.encounterId")
    p.add_argument("--fhir-server", help="read the patient from this FHIR server (with --patient)")
    p.add_argument("--patient", help="the patient id on --fhir-server")
    p.add_argument("--token", help="bearer token for --fhir-server")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per FHIR request (default 10)")
    p.add_argument("--content", help="content folder (default CDS_CONTENT_DIR)")
    p.add_argument("--trace", action="store_true",
                   help="also each rule's conditions, their operands' results and every variable's value")
    p.add_argument("--json", action="store_true", help="the CDS Hooks responses as JSON")
    p.set_defaults(fn=_run)
    p = sub.add_parser("test", help="the scenario cases of these rules (all by default) against their goldens")
    p.add_argument("rules", nargs="*", metavar="RULE", help="rule ids (DAH-05) or cases (DAH-05/p01-gpa-hypoxemic)")
    p.add_argument("--accept", action="store_true",
                   help="after showing each failing case's difference, write its answer as the new golden if confirmed")
    p.add_argument("--yes", action="store_true", help="with --accept: do not ask")
    p.add_argument("--content", help="content folder (default CDS_CONTENT_DIR); cases are its tests/ folder")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    p.set_defaults(fn=_test)
    args = parser.parse_args(argv)
    from service.errors import ConfigurationError

    try:
        return args.fn(args)
    except ConfigurationError as exc:  # a malformed CDS_* variable (service.config): said once, no traceback
        print(f"ERROR {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
