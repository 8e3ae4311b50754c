"""HTML page chrome: navigation, sidebars, footers and permalinks are not the document."""

from __future__ import annotations

from ingest.chrome import strip_chrome
from ingest.chunk import config_digest
from ingest.definitions import read_html
from ingest.parse import parse_file
from pipeline.config import Settings

# The shape of a Sphinx page (classic theme): the related bar and the sidebar are navigation by their role,
# the body is the main content, and every heading and term ends in a "¶" permalink.
SPHINX = """<!DOCTYPE html><html><head><title>Getting Started &#8212; Widget documentation</title></head><body>
<div class="related" role="navigation" aria-label="related navigation"><h3>Navigation</h3><ul>
<li class="right"><a href="genindex.html" title="General Index">index</a></li>
<li class="right"><a href="py-modindex.html">modules</a> |</li><li><a href="index.html">Widget</a> &#187;</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
<section id="getting-started"><h1>Getting Started<a class="headerlink" href="#getting-started" title="Permalink to this heading">¶</a></h1>
<p>Widget renders reports from plain text files. Install it with <code>pip install widget</code> and run
<code>widget build</code> in the folder that holds <code>widget.toml</code>.</p>
<section id="configuration"><h2>Configuration<a class="headerlink" href="#configuration">¶</a></h2>
<dl class="py data"><dt class="sig" id="output_dir"><span class="pre">output_dir</span><a class="headerlink" href="#output_dir">¶</a></dt>
<dd><p>The folder reports are written to. The default is <code>_build</code>; see <a href="#configuration">Configuration</a>.</p></dd></dl>
<dl class="py function"><dt class="sig" id="widget.build"><span class="sig-name descname"><span class="pre">build</span></span>(<em>folder</em>)<a class="reference internal" href="_modules/widget.html#build"><span class="viewcode-link"><span class="pre">[source]</span></span></a><a class="headerlink" href="#widget.build">¶</a></dt>
<dd><p>Renders every report in the folder.</p></dd></dl>
<dl class="simple"><dt>report_dir<a class="headerlink" href="#report_dir" title="Permalink to this term">\uf0c1</a></dt>
<dd><p>Where finished reports are kept.</p></dd></dl>
</section></section></div></div></div>
<div class="sphinxsidebar" role="navigation" aria-label="main navigation"><div class="sphinxsidebarwrapper">
<h3>Quick search</h3><form class="search" action="search.html" method="get"><input type="text" name="q" /></form>
<h3>Table of Contents</h3><ul><li><a href="#">Getting Started</a><ul><li><a href="#configuration">Configuration</a></li></ul></li></ul>
<h4>Previous topic</h4><p class="topless"><a href="install.html">Installing Widget</a></p></div></div></div>
<div class="footer" role="contentinfo">&#169; Copyright 2026, the Widget team. Created using Sphinx.</div>
</body></html>"""

# A page without a marked main content: a menu and breadcrumbs made of links, an in-page table of contents,
# a DocBook-style "Prev / Next" bar, a reference list of long titles, and a boxed note (DocBook's "sidebar").
PLAIN = """<html><body>
<div id="page-header"><p class="menu"><a href="mod/">Modules</a> | <a href="dirs.html">Directives</a> |
<a href="faq/">FAQ</a> | <a href="glossary.html">Glossary</a></p></div>
<div id="path"><a href="/">Apache</a> &gt; <a href="/httpd/">HTTP Server</a> &gt; <a href="./">Documentation</a></div>
<div id="preamble"><h1>Log Files</h1>
<p>In order to effectively manage a web server, it is necessary to get feedback about its activity.</p>
<ul id="toc"><li><a href="#errorlog">Error Log</a></li><li><a href="#accesslog">Access Log</a></li>
<li><a href="#rotation">Log Rotation</a></li></ul></div>
<h2><a id="errorlog">Error Log</a> <a title="Link to this section" href="#errorlog">¶</a></h2>
<p>The server error log, whose name and location is set by the ErrorLog directive, is the most important log file.
See <a href="#accesslog">the access log</a> for requests.</p>
<div class="sidebar"><p class="title"><strong>VOCABULARY</strong> Log rotation</p><p>Rotating a log means
moving it aside and starting a new one, so that no file grows without end.</p></div>
<pre>LogFormat "%h %l %u %t" <a href="#a">common</a> <a href="#b">combined</a> <a href="#c">vhost</a></pre>
<h2>References</h2><ul><li><a href="https://example.org/1">The Economic Impacts of Inadequate Infrastructure for Software Testing</a></li>
<li><a href="https://example.org/2">Code Conventions for the Java Programming Language, revised edition</a></li>
<li><a href="https://example.org/3">Software maintenance practices in large organisations over ten years</a></li></ul>
<h2 class="memtitle"><span class="permalink"><a href="#ga32e4">&#9670;&nbsp;</a></span>mdb_env_open()</h2>
<p>Open an environment handle.</p>
<ul class="docnav"><li class="previous"><a href="mpm.html"><strong>Prev</strong>2.1 MPMs</a></li>
<li class="home"><a href="index.html"><strong>Home</strong></a></li><li class="next"><a href="urls.html"><strong>Next</strong>2.3 URLs</a></li></ul>
</body></html>"""


def texts(path):
    return [e.text for e in parse_file(path, "HTML", "text/html", None, Settings().ingest).elements]


def test_a_sphinx_page_is_its_main_content_without_permalinks(tmp_path):
    path = tmp_path / "quickstart.html"
    path.write_text(SPHINX, encoding="utf-8")
    parsed = parse_file(path, "HTML", "text/html", None, Settings().ingest)
    got = [e.text for e in parsed.elements]
    assert parsed.title == "Getting Started"  # (it was "Navigation": the related bar's heading came first)
    assert got[0] == "Getting Started" and "Configuration" in got
    assert any(t.startswith("Widget renders reports from plain text files.") for t in got)
    assert any(t.startswith("output_dir: The folder reports are written to.") for t in got)  # term joined, no ¶
    assert any("see Configuration." in t for t in got)  # a same-page link that is not a permalink stays
    assert "build(folder): Renders every report in the folder." in got  # no "[source]" link in the term
    assert "report_dir: Where finished reports are kept." in got  # nor the Read the Docs theme's link icon
    joined = "\n".join(got)
    for chrome in ("¶", "[source]", "Navigation", "Quick search", "Table of Contents", "Previous topic", "Installing Widget",
                   "Copyright", "modules", "index"):
        assert chrome not in joined, chrome
    # the setting that keeps a page whole; it is part of the chunk format, so a store re-chunks when it changes
    keep = Settings().ingest.model_copy(update={"html_chrome": "keep"})
    kept = parse_file(path, "HTML", "text/html", None, keep)
    assert kept.title == "Navigation" and "Quick search" in [e.text for e in kept.elements]
    assert config_digest(keep, "m") != config_digest(Settings().ingest, "m")


def test_menus_breadcrumbs_and_prev_next_bars_go_content_stays(tmp_path):
    path = tmp_path / "logs.html"
    path.write_text(PLAIN, encoding="utf-8")
    got = texts(path)
    joined = "\n".join(got)
    assert "Log Files" in got and "Error Log" in got
    assert any(t.startswith("In order to effectively manage a web server") for t in got)
    assert any("the access log for requests" in t for t in got)
    assert any("Rotating a log means moving it aside" in t for t in joined.split("\n"))  # a boxed note is content
    assert 'LogFormat "%h %l %u %t" common combined vhost' in joined  # code is never judged by its links
    assert "The Economic Impacts of Inadequate Infrastructure for Software Testing" in joined  # titles, not labels
    assert "mdb_env_open()" in got  # Doxygen's entry title, without the "◆" permalink before it
    for chrome in ("Modules", "Glossary", "HTTP Server", "Log Rotation", "¶", "◆", "Prev", "2.3 URLs"):
        assert chrome not in joined, chrome


def test_a_page_that_is_its_links_is_kept_whole_and_one_main_content_is_needed():
    index = "<html><body><h1>Library</h1><ul>" + "".join(
        f'<li><a href="m{i}.html">module {i}</a></li>' for i in range(30)) + "</ul></body></html>"
    doc = read_html(index)
    found = strip_chrome(doc)
    assert found.blocks == 0 and found.after == found.before  # an index of links is the page's content
    assert "module 29" in doc.text_content()
    two = ("<html><body><main><p>" + "First part of the page with enough words to count. " * 5 + "</p></main>"
           "<main><p>" + "Second part of the page, just as long as the first. " * 5 + "</p></main></body></html>")
    doc = read_html(two)
    assert not strip_chrome(doc).main and "Second part" in doc.text_content()  # which one? neither: keep both


def test_a_real_handbook_page_loses_its_prev_next_bars_and_keeps_its_boxed_notes(shared_data, tmp_path):
    parsed = parse_file(shared_data / "docs" / "debian-handbook-en" / "sect.apt-cache.html", "HTML", "text/html",
                        None, Settings().ingest)
    got = [e.text for e in parsed.elements]
    joined = "\n".join(got)
    assert "Prev" not in joined and "Next" not in joined  # "Prev / The Debian Administrator's Handbook / Next"
    assert any("A cache is a temporary storage system" in t for t in got)  # the "VOCABULARY Cache" box
    assert parsed.title.startswith("6.3. The apt-cache Command")


# An Exim specification chapter as Debian ships it: the site's name is an <h1> linking to the site, and a
# "<-previous" / "next->" pair of links, marked by their class, opens the chapter.
EXIM = """<html><head><title>30. The smtp transport</title></head><body class="no-js">
<script type="text/javascript">document.body.className='with-js';</script><h1 id="header"><a href="http://www.exim.org">Exim Internet Mailer</a></h1>
<div id="outer"><ul id="nav_flow" class="nav"><li><a href="https://www.exim.org/index.html">Home</a></li></ul>
<div id="inner"><div id="content">
<a class="previous_page" href="ch-the_pipe_transport.html">&lt;-previous</a><a class="next_page" href="ch-address_rewriting.html">next-&gt;</a>
<div id="chapter" class="chapter"><h2 id="CHAPsmtptrans"><a href="ch-the_smtp_transport.html">Chapter 30 - The smtp transport</a></h2>
<p>The smtp transport delivers messages over TCP/IP connections using the SMTP or LMTP protocol. See the
<a href="ch-retry_configuration.html" rel="next">retry configuration</a> for what happens next.</p>
<h3>Multiple messages on a single connection</h3><p>The sending of multiple messages over a single TCP/IP connection can arise in two ways.</p>
</div></div></div></div></body></html>"""


def test_a_site_banner_and_paging_links_go_the_chapter_s_title_is_the_title(tmp_path):
    path = tmp_path / "ch-the_smtp_transport.html"
    path.write_text(EXIM, encoding="utf-8")
    parsed = parse_file(path, "HTML", "text/html", None, Settings().ingest)
    joined = "\n".join(e.text for e in parsed.elements)
    assert parsed.title == "Chapter 30 - The smtp transport"  # (it was "Exim Internet Mailer", on every chapter)
    for chrome in ("Exim Internet Mailer", "previous", "next->"):
        assert chrome not in joined, chrome
    assert "See the retry configuration for what happens next." in joined  # a link in prose is text, rel or not


def test_a_heading_that_links_elsewhere_stays_when_it_is_the_page_s_only_heading_or_text_comes_first():
    only = '<html><body><h1><a href="https://example.org/">Example project</a></h1><p>' + "Words. " * 40 + "</p></body></html>"
    doc = read_html(only)
    strip_chrome(doc)
    assert "Example project" in doc.text_content()
    after_text = ('<html><body><p>Related projects we like.</p><h2><a href="https://example.org/">Example</a></h2>'
                  "<p>" + "Words. " * 40 + "</p><h2>Another</h2><p>More.</p></body></html>")
    doc = read_html(after_text)
    strip_chrome(doc)
    assert "Example" in doc.text_content()
