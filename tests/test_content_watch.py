"""Folder content reloaded in place (service.content.watch): an edit that builds is served, an edit
that does not is refused while the last good content keeps serving, and the status says which.
The running server (SIGHUP, file changes) is in tests/web/test_content_reload.py."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from service.content.watch import FolderWatch, reload_all
from service.errors import ContentErrors
from service.runtime import Runtime
from tests.conftest import SYNTHETIC

PLAN = "PlanDefinition-proto.json"
HIGH = 1  # the index of the action `high` ("The level is high") in the synthetic plan


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(SYNTHETIC, target)
    return target


def edit_plan(folder: Path, title: str | None = None, condition: str | None = None) -> None:
    """Change the synthetic plan's action `high` as an informatician's editor would."""
    path = folder / PLAN
    plan = json.loads(path.read_text(encoding="utf-8"))
    action = plan["action"][HIGH]
    if title is not None:
        action["title"] = title
    if condition is not None:
        action["condition"][0]["expression"]["expression"] = condition
    path.write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def first_title(runtime: Runtime) -> str:
    action = runtime.content.plan("proto").raw["action"][HIGH]
    assert action["id"] == "high"
    return str(action["title"])


def runtime_of(watch: FolderWatch) -> Runtime:
    return Runtime(config=None, content=watch.initial(), store=None, fetcher_factory=None)  # type: ignore[arg-type]


def test_an_edit_that_builds_is_swapped_in_and_a_check_without_change_reads_nothing(folder):
    watch = FolderWatch(folder, poll_seconds=0)
    runtime = runtime_of(watch)
    first, version = runtime.content, watch.status.version
    assert watch.check(runtime) is False and runtime.content is first

    edit_plan(folder, title="The level is high (edited)")
    assert watch.check(runtime) is True
    assert first_title(runtime) == "The level is high (edited)"
    status = watch.status.to_json()
    assert status["version"] != version and status["lastError"] is None
    assert status["services"] == ["proto-both", "proto-order-select", "proto-order-sign", "proto-patient-view"]


def test_a_broken_edit_is_refused_the_last_good_content_serves_and_the_error_names_file_and_path(folder, caplog):
    watch = FolderWatch(folder, poll_seconds=0)
    runtime = runtime_of(watch)
    good, version = runtime.content, watch.status.version

    edit_plan(folder, title="The level is high (edited)", condition="%highLevels.exists() and")
    assert watch.check(runtime) is False
    assert runtime.content is good and first_title(runtime) == "The level is high"
    status = watch.status.to_json()
    assert status["version"] == version, "the version served is still the good one"
    error = status["lastError"]
    assert error["version"] != version and version in error["kept"]
    assert [(e["file"], e["path"]) for e in error["errors"]] == [
        (PLAN, "PlanDefinition.action[1].condition[0].expression")]
    assert "syntax error" in error["errors"][0]["message"]
    assert any("content reload refused: PlanDefinition-proto.json" in r.getMessage() for r in caplog.records)

    edit_plan(folder, condition="%highLevels.exists()")  # fixed: served, the error is gone
    assert watch.check(runtime) is True
    assert first_title(runtime) == "The level is high (edited)"
    assert watch.status.to_json()["lastError"] is None


def test_a_file_that_is_not_json_is_refused_too(folder):
    watch = FolderWatch(folder, poll_seconds=0)
    runtime = runtime_of(watch)
    (folder / "Library-half-written.json").write_text('{"resourceType": "Libr', encoding="utf-8")
    assert watch.check(runtime) is False
    assert watch.status.to_json()["lastError"]["errors"][0]["file"] == "Library-half-written.json"
    (folder / "Library-half-written.json").unlink()
    assert watch.check(runtime) is False, "back to the content served: nothing to swap"
    assert watch.status.to_json()["lastError"] is None


def test_a_process_starting_while_the_folder_is_broken_serves_the_snapshot_and_says_so(folder, tmp_path):
    snapshot = tmp_path / "snapshot" / "last-good.json"
    first = FolderWatch(folder, poll_seconds=0, snapshot=snapshot)
    version = runtime_of(first).content and first.status.version
    assert snapshot.is_file()

    edit_plan(folder, title="The level is high (edited)", condition="%highLevels.exists() and")
    with pytest.raises(ContentErrors):
        FolderWatch(folder, poll_seconds=0).initial()  # no snapshot: refuses to start, as at first start
    replacement = FolderWatch(folder, poll_seconds=0, snapshot=snapshot)
    runtime = runtime_of(replacement)
    assert first_title(runtime) == "The level is high"
    status = replacement.status.to_json()
    assert status["version"] == version
    assert status["lastError"]["errors"][0]["file"] == PLAN and str(snapshot) in status["lastError"]["kept"]


def test_the_thread_reloads_when_asked_without_polling(folder):
    watch = FolderWatch(folder, poll_seconds=0)  # no polling: only reload_now (SIGHUP)
    runtime = runtime_of(watch)
    watch.start(runtime)
    try:
        edit_plan(folder, title="The level is high (asked)")
        reload_all()
        for _ in range(100):
            if first_title(runtime) == "The level is high (asked)":
                break
            time.sleep(0.05)
        assert first_title(runtime) == "The level is high (asked)"
    finally:
        watch.stop()
