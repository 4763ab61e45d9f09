"""Configuration precedence and the command line."""

from __future__ import annotations

import json

import pytest

from service.cli import main
from service.config import load_config
from tests.conftest import CONTENT


def test_environment_then_overrides():
    cfg = load_config({"fhir_retries": 5}, environ={"CDS_FHIR_TIMEOUT_SECONDS": "2.5", "CDS_TRACE_DEFAULT": "true",
                                                    "CDS_FHIR_RETRIES": "1"})
    assert cfg.fhir_timeout_seconds == 2.5 and cfg.trace_default is True and cfg.fhir_retries == 5


def test_public_base_url_defaults_to_the_request_root_and_reads_the_environment():
    assert load_config(environ={}).public_base_url == ""
    assert load_config(environ={"CDS_PUBLIC_BASE_URL": "https://cds.example.org"}).public_base_url == "https://cds.example.org"


def test_unknown_override_is_refused():
    with pytest.raises(ValueError, match="unknown configuration keys"):
        load_config({"nope": 1})


def test_validate_reports_services(capsys):
    assert main(["validate", str(CONTENT)]) == 0
    assert "dah-patient-view" in capsys.readouterr().out


def test_validate_names_file_and_path_of_bad_content(tmp_path, capsys):
    (tmp_path / "PlanDefinition-x.json").write_text(
        json.dumps(
            {
                "resourceType": "PlanDefinition",
                "id": "x",
                "url": "http://example.org/fhir/PlanDefinition/x",
                "status": "active",
                "action": [
                    {
                        "title": "t",
                        "condition": [
                            {"kind": "applicability", "expression": {"language": "text/fhirpath", "expression": "1 +"}}
                        ],
                    }
                ],
            }
        )
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "PlanDefinition-x.json:1 action[0] > condition[0].expression: syntax error" in err


def test_service_refuses_to_start_on_bad_content(tmp_path):
    from service.app import create_app
    from service.errors import ContentErrors

    (tmp_path / "ValueSet-v.json").write_text(
        json.dumps(
            {
                "resourceType": "ValueSet",
                "id": "v",
                "url": "http://example.org/fhir/ValueSet/v",
                "status": "active",
                "compose": {
                    "include": [
                        {
                            "system": "http://snomed.info/sct",
                            "filter": [{"property": "concept", "op": "is-a", "value": "1"}],
                        }
                    ]
                },
            }
        )
    )
    with pytest.raises(ContentErrors, match="ValueSet-v.json"):
        create_app({"content_dir": str(tmp_path), "database_url": "sqlite:///:memory:"})


def test_feedback_report_counts_per_rule(client, app, capsys, monkeypatch):
    case = json.loads((CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json").read_text())
    cards = client.post("/cds-services/dah-patient-view", json=case["request"]).get_json()["cards"]
    card = next(c for c in cards if c["source"]["topic"]["code"] == "DAH-05")
    client.post("/cds-services/dah-patient-view/feedback", json={"feedback": [
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:01:00Z",
         "overrideReason": {"reason": {"code": "declined", "system": "http://example.org/fhir/CodeSystem/dah-cds-override-reason"}}}]})
    monkeypatch.setenv("CDS_DATABASE_URL", app.extensions["cds"].config.database_url)
    assert main(["feedback-report", "--json"]) == 0
    rows = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        rows["DAH-05"]["issued"] == 1
        and rows["DAH-05"]["overridden"] == 1
        and rows["DAH-05"]["accepted"] == 0
        and rows["DAH-05"]["override_rate"] == 1.0
    )


def test_serve_refuses_an_unsafe_set_up_before_any_worker_starts(monkeypatch, capsys):
    monkeypatch.delenv("CDS_TRUSTED_CLIENTS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "CDS_TRUSTED_CLIENTS" in capsys.readouterr().err
    monkeypatch.setenv("CDS_CORS_ORIGINS", "null")
    assert main(["serve", "--host", "127.0.0.1", "--port", "1"]) == 2
    assert "must not list null" in capsys.readouterr().err


def test_serving_settings_follow_the_configuration():
    from service.serving import ReadTimeoutThreadWorker, gunicorn_settings

    settings = gunicorn_settings(load_config({"host": "::1", "port": 9000, "workers": 3, "threads": 4,
                                              "call_deadline_seconds": 45}))
    assert settings["bind"] == ["[::1]:9000"] and settings["workers"] == 3 and settings["threads"] == 4
    assert settings["worker_class"] is ReadTimeoutThreadWorker
    assert settings["timeout"] == 55  # always past the call deadline: a call answers before a worker is stopped
    assert gunicorn_settings(load_config())["timeout"] == 30


def test_unset_means_the_safe_default_and_an_empty_cors_setting_means_no_origin():
    unset = load_config(environ={})
    assert unset.trace_allowed is None and unset.cors_origins is None  # decided by the mode (service.web.policy)
    cfg = load_config(environ={"CDS_TRACE_ALLOWED": "false", "CDS_CORS_ORIGINS": "", "CDS_CALL_DEADLINE_SECONDS": "7.5",
                               "CDS_FHIR_MAX_RESPONSE_BYTES": "1_000_000"})
    assert cfg.trace_allowed is False and cfg.cors_origins == ""
    assert cfg.call_deadline_seconds == 7.5 and cfg.fhir_max_response_bytes == 1_000_000
    assert load_config(environ={"CDS_TRACE_ALLOWED": "true"}).trace_allowed is True


# ---- configuration errors and the README table ---------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("CDS_FHIR_RETRIES", "abc", "a whole number"),
    ("CDS_FHIR_RETRIES", "-1", "0 or more"),
    ("CDS_FHIR_TIMEOUT_SECONDS", "ten", "a number"),
    ("CDS_CALL_DEADLINE_SECONDS", "nan", "a finite number"),
    ("CDS_LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("CDS_LOG_FORMAT", "xml", "one of text, json"),
    ("CDS_TRACE_DEFAULT", "maybe", "true or false"),
    ("CDS_TRACE_ALLOWED", "sometimes", "true or false"),
])
def test_a_malformed_variable_is_named_with_the_form_expected(variable, value, expected):
    from service.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        load_config(environ={variable: value})
    assert str(caught.value).startswith(f"{variable}={value!r}: expected") and expected in str(caught.value)


def test_well_formed_values_are_read():
    cfg = load_config(environ={"CDS_LOG_LEVEL": "debug", "CDS_LOG_FORMAT": "JSON", "CDS_TRACE_ALLOWED": "",
                               "CDS_METRICS_PUBLIC": "on", "CDS_FHIR_RETRIES": " 3 "})
    assert (cfg.log_level, cfg.log_format, cfg.trace_allowed, cfg.metrics_public, cfg.fhir_retries) == \
        ("DEBUG", "json", None, True, 3)


def test_the_database_lives_in_the_data_dir_unless_named(tmp_path):
    assert load_config(environ={"CDS_DATA_DIR": str(tmp_path)}).database_url == \
        f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    named = load_config(environ={"CDS_DATA_DIR": str(tmp_path), "CDS_DATABASE_URL": "sqlite:///:memory:"})
    assert named.database_url == "sqlite:///:memory:"


@pytest.mark.parametrize("command", [["serve"], ["validate"], ["feedback-report"]])
def test_the_command_line_says_which_variable_is_wrong_and_exits_2_without_traceback(command, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update({"CDS_FHIR_RETRIES": "abc", "CDS_DATA_DIR": str(tmp_path)})
    done = subprocess.run([str(Path(sys.executable).parent / "dah-cds"), *command], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "ERROR CDS_FHIR_RETRIES='abc': expected a whole number (e.g. 2)"


def readme_variables() -> set[str]:
    import re

    text = (CONTENT.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `CDS_")]
    return {name for row in rows for name in re.findall(r"`(CDS_[A-Z_]+)`", row.split("|")[1])}


def test_the_readme_table_lists_exactly_the_variables_of_the_configuration():
    from dataclasses import fields

    from service.config import Config, variable

    assert readme_variables() == {variable(f.name) for f in fields(Config)}
