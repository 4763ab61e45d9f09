"""The command line on the bundled content, loaded once per session."""

from __future__ import annotations

import pytest

from service import cli


@pytest.fixture
def dah_cds(content, monkeypatch, capsys):
    """`dah-cds ARGS...` -> (exit code, stdout, stderr), on the session's content."""
    import service.content

    monkeypatch.setattr(service.content, "load_folder", lambda folder: content)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke
