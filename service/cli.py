"""Command line for operators and informaticians: `dah-cds serve|validate|feedback-report`."""

from __future__ import annotations

import argparse
import json
import sys

from service.config import load_config


def _validate(args) -> int:
    from service.engine import load_content
    from service.errors import ContentErrors

    folder = args.folder or load_config().content_dir
    try:
        content = load_content(folder)
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
    from service.app import create_app

    cfg = load_config()
    create_app().run(host=args.host or cfg.host, port=args.port or cfg.port)
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
    p = sub.add_parser("serve", help="run the development server (use gunicorn in production)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(fn=_serve)
    p = sub.add_parser("feedback-report", help="acceptance and override rates per rule")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_feedback_report)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
