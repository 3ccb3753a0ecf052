"""What `runs`, `inspect` and `reset` start from: the saved parse, while it still fits."""

from __future__ import annotations

import shutil
from pathlib import Path

from dbt.artifacts.resources.base import FileHash
from dbt.parser.manifest import extended_mashumaro_encoder

from dbt_eventbridge.warehouse.project import PACKAGE, DbtProject


def _copy(project: DbtProject, to: Path) -> Path:
    """The project's files and its saved parse, in another folder (the package stays linked)."""
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(Path(project.project_dir) / name, to / name)
    (to / "dbt_packages").mkdir()
    (to / "dbt_packages" / PACKAGE).symlink_to((Path(project.project_dir) / "dbt_packages" / PACKAGE).resolve())
    saved = to / "target" / "dbt_eventbridge"
    saved.mkdir(parents=True)
    shutil.copy(Path(project.project_dir) / "target" / "dbt_eventbridge" / "partial_parse.msgpack", saved)
    return saved / "partial_parse.msgpack"


def test_a_saved_parse_is_read_while_our_package_is_as_it_was_parsed(warehouse_project, tmp_path) -> None:
    saved = _copy(warehouse_project, tmp_path)
    assert DbtProject(tmp_path, profiles_dir=tmp_path).load_saved() is True

    # the package upgraded since (`dbt deps`): its macros in the saved parse are the old ones
    old = DbtProject(tmp_path, profiles_dir=tmp_path)
    assert old.load_saved() is True
    macro_file = next(f for f in old.manifest.files.values() if f.project_name == PACKAGE)
    macro_file.checksum = FileHash.from_contents("{% macro an_older_version() %}{% endmacro %}")
    saved.write_bytes(old.manifest.to_msgpack(extended_mashumaro_encoder))
    assert DbtProject(tmp_path, profiles_dir=tmp_path).load_saved() is False


def test_a_saved_parse_fits_only_the_adapter_it_was_parsed_for(warehouse_project) -> None:
    assert warehouse_project.saved_fits_target() is True
    kind = warehouse_project.manifest.metadata.adapter_type
    try:
        warehouse_project.manifest.metadata.adapter_type = "snowflake"
        assert warehouse_project.saved_fits_target() is False
    finally:
        warehouse_project.manifest.metadata.adapter_type = kind
