"""`perpsignal docs` outside a source checkout, or in a read-only one: one line, not a
traceback; and the files it regenerates are replaced whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perpsignal_cli import docs


def test_without_a_readme_it_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # an installed package: REPO is the environment's folder, with no README.md
    monkeypatch.setattr(docs, "REPO", tmp_path)
    assert docs.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"perpsignal docs: cannot read {tmp_path / 'README.md'} (")
    assert "run it there" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_file_it_cannot_write_is_named_and_no_partial_file_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = docs.REPO / "README.md"
    (tmp_path / "README.md").write_text(readme.read_text())
    compose = tmp_path / "gone" / ".env.example"  # its folder is missing: cannot be written
    monkeypatch.setattr(docs, "REPO", tmp_path)
    monkeypatch.setattr(docs, "COMPOSE_ENV_EXAMPLE", compose)
    assert docs.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"perpsignal docs: cannot write {compose}: No such file or directory")
    assert len(err.strip().splitlines()) == 1
    assert not [n for n in os.listdir(tmp_path) if ".partial-" in n]
