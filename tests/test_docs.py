"""The README documents every setting with its real default, the two commands come first, and the
docs hold together: the README stays short, relative links resolve, quoted benchmarks exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from online.contract import SETTINGS_DOC
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [ROOT / "README.md", *DOC_PAGES]

# [text](target): the target up to a space or ')', any #anchor dropped below.
LINK = re.compile(r"\]\(([^)\s]+)\)")
# benchmarks/ingest.py, benchmarks.ingest, python -m benchmarks.ingest
BENCHMARK = re.compile(r"\bbenchmarks[./]([A-Za-z_][A-Za-z0-9_]*)")


CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    for env, default, doc in SETTINGS_DOC:
        assert f"| `{env}` | `{default}` | {doc} |" in CONFIGURATION, f"{env} is missing or stale in docs/configuration.md"


def test_the_readme_quotes_settings_with_their_real_defaults() -> None:
    defaults = {env: default for env, default, _ in SETTINGS_DOC}
    for env, default in re.findall(r"^\| `(LIVERECO_[A-Z_]+)` \| `([^`]*)` \|", README, re.M):
        assert defaults.get(env) in (default, default + ".0"), f"README quotes {env}={default}; the code says {defaults.get(env)}"


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make run" in first_block and "make test" in first_block


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_a_front_door() -> None:
    lines = README.count("\n")
    assert lines <= 350, f"README.md has {lines} lines: move details to docs/"


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings (code blocks skipped)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_at_existing_files(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_quoted_benchmarks_exist(page: Path) -> None:
    for name in BENCHMARK.findall(page.read_text()):
        assert (ROOT / "benchmarks" / f"{name}.py").exists(), f"{page.name} quotes benchmarks.{name}, which does not exist"


def test_docs_exist() -> None:
    assert DOC_PAGES, "docs/ holds no pages"
