"""The documentation site: it builds strictly (a broken link or reference fails), every internal link and image of
every page resolves, the front page and every results page render in headless Chromium with every image loaded, and
the README stays a front page whose links resolve."""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import REPO, dump_dom

pytestmark = pytest.mark.slow
LINK = re.compile(r"""(?:href|src)="([^"]+)\"""")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--quiet", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def internal_links(page: Path) -> list:
    """Every href/src of a built page that points into the site (not to the web, not an in-page anchor)."""
    found = []
    for link in LINK.findall(page.read_text()):
        parsed = urlparse(link)
        if parsed.scheme or link.startswith(("#", "//", "mailto:", "data:")):
            continue
        found.append(unquote(parsed.path))
    return found


def test_every_internal_link_and_image_of_every_page_resolves(site):
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")  # 404.html: a server's, from its root
    assert len(pages) >= 25
    broken = {
        str(page.relative_to(site)): missing
        for page in pages
        if (missing := [link for link in internal_links(page) if link and not (page.parent / link).resolve().exists()])
    }
    assert broken == {}


def test_the_reference_is_generated_from_the_configs_registries_and_docstrings(site):
    config = (site / "reference" / "config.html").read_text()
    assert "channel_mean" in config and "roar_digits" in config and "captum-Saliency" in config
    assert "ig_steps" in config  # a key of conf/sections/attribute.yaml, with its comment
    cli = (site / "reference" / "cli.html").read_text()
    assert all(f"roar-{stage}" in cli for stage in ("train", "attribute", "mask", "eval", "report", "plan", "pipeline"))
    api = (site / "reference" / "api.html").read_text()
    assert "no_retrain" in api and "register_estimator" in api and "Returns" in api


def test_the_front_page_and_the_results_pages_render_with_every_image(site):
    pages = [site / "index.html", *sorted((site / "results").glob("*.html"))]
    seen_images = 0
    for page in pages:
        dom = dump_dom(page)
        loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
        assert loaded, f"{page.name}: the page's script did not run"
        assert loaded.group(1) == loaded.group(2), f"{page.name}: {loaded.group(0)}"
        seen_images += int(loaded.group(2))
    assert seen_images >= 3  # the results pages carry figures, and they load


def test_the_readme_is_a_front_page_whose_links_resolve():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)", text)
    assert links and [link for link in links if not link.startswith("http") and not (REPO / link).exists()] == []
