"""The documentation stands on its own: every link and every cited file is inside the repository.

A reader of a fresh clone has nothing else; a link to a file beside the repository works on
the machine where the docs were written and nowhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and [text](target "title"); images too.
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = ("http://", "https://", "mailto:")
# Paths that only exist on the machine the docs were written on.
OUTSIDE = re.compile(r"(?<![\w.])(/work/|/home/|\.\./shared/[\w./-]*\.md)")


def _relative_links(doc: Path) -> list[str]:
    return [target for target in LINK.findall(doc.read_text())
            if not target.startswith(EXTERNAL) and not target.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_of_the_docs_resolves_to_a_file_inside_the_repository(doc):
    broken = []
    for target in _relative_links(doc):
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == [], f"{doc.name} links outside the repository or to nothing: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_cite_no_file_outside_the_repository(doc):
    cited = [m.group(0) for m in OUTSIDE.finditer(doc.read_text())]
    assert cited == [], f"{doc.name} cites paths outside the repository: {cited}"


def test_the_link_check_sees_links_and_refuses_one_that_leaves_the_repository(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("[a](docs/api.md) [b](../shared/totara-contract.md \"t\") [c](#top) "
                   "[d](https://example.org)")
    assert _relative_links(doc) == ["docs/api.md", "../shared/totara-contract.md"]
    assert OUTSIDE.search("see `../shared/totara-contract.md`")
    assert OUTSIDE.search("python x /work/shared/data/oulad")
