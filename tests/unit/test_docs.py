"""The docs the code points to live in the repository and do not drift from it."""
from __future__ import annotations

import re

from tests.config_reference import render
from tests.conftest import REPO_ROOT


def test_config_reference_is_generated_from_the_current_schema():
    committed = (REPO_ROOT / "docs" / "config-reference.md").read_text()
    assert committed == render(), "docs/config-reference.md is stale: run `make docs`"


def test_no_code_points_outside_the_repository_for_its_docs():
    """A user never has the development workspace's ../shared/docs: references go to docs/ in the repo."""
    offenders = []
    for path in [*REPO_ROOT.glob("dlcot/**/*.py"), *REPO_ROOT.glob("tests/**/*.py"), *REPO_ROOT.glob("launch/**/*"),
                 REPO_ROOT / "pyproject.toml", REPO_ROOT / "README.md"]:
        if path.is_file() and path != REPO_ROOT / "tests" / "unit" / "test_docs.py":
            text = path.read_text(errors="replace")
            if re.search(r"shared/docs|\b(?:DESIGN|STACK|STYLE)\.md", text):
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert not offenders, f"docs referenced outside the repository: {offenders}"
    for doc in re.findall(r"docs/[\w.-]+\.md", (REPO_ROOT / "README.md").read_text()):
        assert (REPO_ROOT / doc).is_file(), doc
