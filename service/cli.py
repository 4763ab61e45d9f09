"""Command line for operators and informaticians: `dah-cds serve|validate|publish|feedback-report`."""

from __future__ import annotations

import argparse
import json
import sys

from service.config import load_config


def _validate(args) -> int:
    from service.content import load_folder
    from service.errors import ContentErrors

    folder = args.folder or load_config().content_dir
    try:
        content = load_folder(folder)
    except ContentErrors as exc:
        for err in exc.errors:
            print(f"ERROR {err}", file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {folder}", file=sys.stderr)
        return 1
    for issue in content.issues:
        print(f"WARNING {issue}")
    print(f"OK {folder}: {len(content.plans)} PlanDefinition, {len(content.activities)} ActivityDefinition, "
          f"{len(content.libraries)} Library, {len(content.terminology.urls())} ValueSet; "
          f"services: {', '.join(sorted(content.services)) or 'none'}")
    return 0


def _serve(args) -> int:
    from service.errors import ConfigurationError
    from service.serving import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    try:
        serve(load_config(overrides))  # gunicorn gthread workers (service.serving); returns when stopped
    except ConfigurationError as exc:
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


def _feedback_report(args) -> int:
    from service.feedback import FeedbackStore

    rows = FeedbackStore(load_config().database_url).rates()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'rule':<24}{'issued':>8}{'accepted':>10}{'overridden':>12}{'accept%':>9}{'override%':>10}")
    for r in rows:
        print(f"{str(r['rule']):<24}{r['issued']:>8}{r['accepted']:>10}{r['overridden']:>12}"
              f"{100 * r['acceptance_rate']:>8.1f}%{100 * r['override_rate']:>9.1f}%")
    return 0


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
    p = sub.add_parser("feedback-report", help="acceptance and override rates per rule")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_feedback_report)
    args = parser.parse_args(argv)
    from service.errors import ConfigurationError

    try:
        return args.fn(args)
    except ConfigurationError as exc:  # a malformed CDS_* variable (service.config): said once, no traceback
        print(f"ERROR {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
