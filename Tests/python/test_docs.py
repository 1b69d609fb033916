"""The README and docs/ stay navigable: every relative link points at a file that exists, every
anchor at a heading of its file, and the README stays a landing page."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's heading slugs: lower case, punctuation dropped, spaces as hyphens."""
    slugs = set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        text = open(page, encoding="utf-8").read()
        for target in LINK.findall(text):
            if re.match(r"^(https?|mailto):", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(resolved):
                broken.append("%s: %s (no such file)" % (os.path.relpath(page, ROOT), target))
            elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                broken.append("%s: %s (no such heading)" % (os.path.relpath(page, ROOT), target))
    assert not broken, "\n".join(broken)


def test_readme_is_a_landing_page_that_links_every_doc():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    # A landing page: the commands, the routes, the measured tables, links; the rest is in docs/.
    assert len(readme.splitlines()) <= 200
    for page in PAGES[1:]:
        assert "docs/" + os.path.basename(page) in readme, os.path.basename(page) + " is not linked from the README"


def test_the_two_commands_are_the_ones_ci_runs():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read().strip().splitlines()[-1]
    assert ci in readme and "scripts/run" in readme
