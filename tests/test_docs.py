"""The README documents every setting with its real default, and the two commands come first."""

from __future__ import annotations

from online.contract import SETTINGS_DOC
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    for env, default, doc in SETTINGS_DOC:
        assert f"| `{env}` | `{default}` | {doc} |" in README, f"{env} is missing or stale in the README"


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
