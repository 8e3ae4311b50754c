"""A documentation site is read as its rendered pages, not as the copies and assets its build writes beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.discover import expand_paths
from ingest.parse import precheck, web_asset
from pipeline.config import IngestSettings
from pipeline.errors import IngestError

PAGE = "<html><body><h1>Timeouts</h1><p>By default, requests do not time out.</p></body></html>"


def _site(root: Path) -> Path:
    files = {
        "index.html": PAGE, "user/advanced.html": PAGE, "searchindex.js": "Search.setIndex({})",
        "objects.inv": "# Sphinx inventory version 2", "genindex.html": PAGE, "search.html": PAGE,
        "py-modindex.html": PAGE, "_sources/index.rst.txt": "Timeouts\n========\n\nBy default, requests do not "
        "time out.\n", "_sources/user/advanced.rst.txt": "Advanced\n", "_static/basic.css": "body {}",
        "_images/flow.png": "png", "_modules/requests/api.html": PAGE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_sphinx_site_is_read_as_its_rendered_pages(tmp_path: Path):
    site = _site(tmp_path / "html")
    found = expand_paths([tmp_path])
    assert [p.relative_to(site).as_posix() for p in found.files] == ["index.html", "user/advanced.html"]
    skipped = {Path(p).relative_to(site).as_posix(): (status, reason) for p, status, reason, _ in found.left_out}
    assert skipped == {name: ("skipped", "site build") for name in (
        "_sources", "_static", "_images", "_modules", "genindex.html", "search.html", "py-modindex.html",
        "searchindex.js", "objects.inv")}
    why = dict((Path(p).name, detail) for p, _, _, detail in found.left_out)
    assert "rendered pages are ingested instead" in why["_sources"]


def test_the_same_names_outside_a_sphinx_site_and_a_build_folder_given_by_name_are_read(tmp_path: Path):
    plain = tmp_path / "notes"  # no searchindex.js: a folder of one's own that happens to use these names
    (plain / "_sources").mkdir(parents=True)
    (plain / "_sources" / "plan.txt").write_text("The plan is due in May.")
    (plain / "search.html").write_text(PAGE)
    assert sorted(p.name for p in expand_paths([plain]).files) == ["plan.txt", "search.html"]

    site = _site(tmp_path / "html")
    assert [p.name for p in expand_paths([site / "_modules"]).files] == ["api.html"]


def test_an_mkdocs_site_is_read_as_its_pages_and_web_assets_are_refused_anywhere(tmp_path: Path):
    """MkDocs' output (as `mkdocs build` writes it): its search index holds every page's text again as JSON,
    and its theme's CSS and JavaScript were read as thousands of chunks of text."""
    site = tmp_path / "site"
    for name in ("index.html", "backups/index.html", "404.html", "sitemap.xml", "sitemap.xml.gz",
                 "search/search_index.json", "search/lunr.js", "css/base.css", "js/base.js",
                 "webfonts/fa-solid-900.woff2", "img/grid.png"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(PAGE if name.endswith(".html") else "x")
    found = expand_paths([site])
    assert sorted(p.relative_to(site).as_posix() for p in found.files) == ["backups/index.html", "img/grid.png", "index.html"]
    assert sorted(Path(p).name for p, status, reason, _ in found.left_out if reason == "site build") == [
        "404.html", "css", "js", "search", "sitemap.xml", "sitemap.xml.gz", "webfonts"]

    assert all(web_asset(Path(n)) for n in ("theme.css", "app.js.map", "bootstrap.min.js", "page.CSS"))
    assert not any(web_asset(Path(n)) for n in ("deploy.js", "notes.txt", "index.html", "css-guide.md"))
    style = tmp_path / "saved_files" / "style.css"
    style.parent.mkdir()
    style.write_text("body { color: #333; margin: 0 auto; } .note { padding: 4px; }")
    with pytest.raises(IngestError, match="stylesheet"):
        precheck(style, "TXT", style.stat().st_size, IngestSettings())
