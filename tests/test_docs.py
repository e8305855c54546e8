"""The documentation: a site that builds strictly (a broken link, a missing anchor or a page left
out of the navigation fails), written for any reader, not for the team's own folders."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_the_docs_site_builds_strictly(tmp_path):
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "guide" / "training" / "index.html").is_file()
    assert (tmp_path / "site" / "findings" / "results" / "index.html").is_file()


def test_the_readme_links_only_to_pages_that_exist():
    import re

    text = (REPO / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith("http")]
    assert targets and all((REPO / t).is_file() for t in targets), [t for t in targets if not (REPO / t).is_file()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_assumes_the_teams_own_folders(page):
    text = page.read_text().lower()
    for phrase in ("../shared", "shared/data", "this team", "our team"):
        assert phrase not in text, f"{page.relative_to(REPO)} mentions {phrase!r}"


def test_the_readme_gets_a_stranger_running_and_stays_short():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make train" in text and "make test" in text and "VAE_LAB_DATA=" in text
