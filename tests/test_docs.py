"""The documentation holds together: links resolve inside the repository, the README stays a
front page, no file cites documents the repository does not have, and docs/development.md names
every module of the packages (abacus and abacus_client).

Plain file reads and `git ls-files`: no stack, no network.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DEVELOPMENT = DOCS / "development.md"
README_LIMIT_BYTES = 10_240

# `[text](target)` or `[text](target "title")`; images (`![alt](src)`) are links too.
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:https?:|mailto:)", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# Documents users never had, the old way to start a node, and the word for an outside contract
# (any case). Spelt in pieces, so that this file does not match the pattern itself.
_FORBIDDEN_WORDS = [
    "shared" + "/",
    "SPEC" + r"\.md",
    "python app" + r"\.py",
    "original" + " design",
]
FORBIDDEN = re.compile("|".join(_FORBIDDEN_WORDS) + r"|(?i:the" + r" spec)\b")


def documents() -> list[Path]:
    """The pages users read: the front page, docs/, and the READMEs beside what they explain."""
    pages = [README, *sorted(DOCS.glob("*.md"))]
    pages += [ROOT / "secrets" / "README.md", ROOT / "tests" / "schemas" / "README.md"]
    return [page for page in pages if page.is_file()]


def prose(markdown: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [target for target in targets if target and not EXTERNAL.match(target)]


def resolve(page: Path, target: str) -> tuple[Path, str]:
    """The file or directory a link names (the page itself for `#anchor`), and its anchor."""
    path, _, anchor = target.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor


def inside_repository(path: Path) -> bool:
    return path == ROOT or ROOT in path.parents


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading))
    return text.strip().lower().replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    result: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        result.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return result


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def tracked_texts() -> dict[str, str]:
    """Every file git tracks that is text, by its path in the repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    texts = {name: text_of(ROOT / name) for name in listed.split("\0") if name}
    return {name: text for name, text in texts.items() if text is not None}


def text_of(path: Path) -> str | None:
    """The file's text, or None when it is missing or binary (a NUL byte, or not UTF-8)."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def package_modules() -> list[str]:
    modules = [*(ROOT / "abacus").rglob("*.py"), *(ROOT / "abacus_client").rglob("*.py")]
    return sorted(
        module.relative_to(ROOT).as_posix()
        for module in modules
        if module.name != "__init__.py" and "__pycache__" not in module.parts
    )


@pytest.mark.parametrize("page", documents(), ids=page_id)
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _ = resolve(page, target)
        if not inside_repository(path) or not path.exists():
            broken.append(target)
    assert broken == [], f"{page_id(page)}: links to nothing in the repository: {broken}"


@pytest.mark.parametrize("page", documents(), ids=page_id)
def test_every_anchor_names_a_heading(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, anchor = resolve(page, target)
        if anchor and path.suffix == ".md" and path.is_file() and anchor not in anchors(path):
            broken.append(target)
    assert broken == [], f"{page_id(page)}: anchors no heading has: {broken}"


def test_the_readme_is_a_front_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; the rest belongs in docs/"


def test_no_tracked_file_cites_documents_outside_the_repository() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    this_file = Path(__file__).resolve().relative_to(ROOT).as_posix()  # holds the pattern itself
    hits = [
        f"{name}:{number}: {line.strip()}"
        for name, text in tracked_texts().items()
        if name != this_file
        for number, line in enumerate(text.splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert hits == [], "cites what users never had:\n" + "\n".join(hits)


def test_the_development_tree_names_every_module() -> None:
    tree = DEVELOPMENT.read_text(encoding="utf-8")
    missing = [module for module in package_modules() if module not in tree]
    assert missing == [], f"docs/development.md does not name: {missing}"
