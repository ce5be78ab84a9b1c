"""Every package folder ships: a subpackage missing from pyproject.toml works in a checkout and breaks an install."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_package_folder_is_declared_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {config["package-dir"][name] for name in config["packages"]}
    folders = {str(p.parent.relative_to(ROOT)) for top in ("conformance", "reference", "spec") for p in (ROOT / top).rglob("__init__.py")}
    assert folders <= declared, f"not shipped: {sorted(folders - declared)}"


def test_package_data_covers_the_clause_files_and_the_rubric():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "clauses/*.toml" in data["attnspec.spec"]
    assert "default_rubric.toml" in data["attnspec.grading"]
    assert list((ROOT / "spec" / "clauses").glob("*.toml")) and (ROOT / "conformance" / "grading" / "default_rubric.toml").exists()
