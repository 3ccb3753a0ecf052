"""Where our own parse of a dbt project writes its artifacts: beside dbt's, never over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt_eventbridge.warehouse.project import PARSE_FOLDER, DbtProject


def _project(tmp_path: Path, extra: str = "") -> DbtProject:
    (tmp_path / "dbt_project.yml").write_text(f"name: p\nprofile: p\n{extra}")
    return DbtProject(tmp_path, profiles_dir=tmp_path)


def test_default_is_a_folder_of_ours_in_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    assert _project(tmp_path)._parse_target() == tmp_path.resolve() / "target" / PARSE_FOLDER


def test_the_projects_target_path_is_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    assert _project(tmp_path, "target-path: build/dbt\n")._parse_target() == \
        tmp_path.resolve() / "build" / "dbt" / PARSE_FOLDER


def test_dbt_target_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "elsewhere"))
    assert _project(tmp_path, "target-path: build\n")._parse_target() == tmp_path / "elsewhere" / PARSE_FOLDER
