"""Rule-based question generation: each rule on hand-written sentences, the answer spans, and the volume of
questions on real Debian handbook pages."""

from __future__ import annotations

import random

import pytest

from generator.sculpt.training.qgen import Section, handbook_sections, html_sections, load_nlp, questions_for


@pytest.fixture(scope="module")
def nlp():
    return load_nlp()


def ask(nlp, text: str, title: str = "") -> list[tuple[str, str]]:
    return [(qa.question, qa.rule) for qa in questions_for(Section("t", title, text), nlp, max_per_section=20)]


@pytest.mark.parametrize("sentence, expected", [
    ("The kernel is the core of the operating system.", ("What is the kernel?", "copula")),
    ("Debian packages are the archives that contain files and metadata.", ("What are Debian packages?", "copula")),
    ("The apt-get command installs packages from the archive.", ("What does the apt-get command install?", "svo")),
    ("Debian developers install packages on their own machines.", ("What do Debian developers install?", "svo")),
    ("The Debian installer copied the kernel to the boot partition.", ("What did the Debian installer copy?", "svo")),
    ("The main configuration file is stored in the /etc/apache2 directory.",
     ("Where is the main configuration file stored?", "passive")),
    ("The Debian project is maintained by volunteers from many countries.",
     ("Who is the Debian project maintained by?", "passive")),
    ("Packages are built by the autobuilders from the source package.", ("What are packages built by?", "passive")),
    ("The administrator can configure the sources with a text editor.",
     ("What can the administrator configure?", "modal")),
    ("To install a package, run apt install followed by the package name.",
     ("How do you install a package?", "purpose")),
    ("You must edit the sources.list file in order to enable the backports repository.",
     ("How do you enable the backports repository?", "purpose")),
])
def test_each_rule_asks_the_expected_question(nlp, sentence, expected):
    assert ask(nlp, sentence) == [expected]


@pytest.mark.parametrize("sentence", [
    "It is the core of the operating system and manages memory.",  # pronoun: the question could not name it
    "The kernel is not a program that users run directly.",  # negated
    "One of the main tools is a program called dpkg-reconfigure.",  # quantified subject
    "The following sections describe the syntax of the configuration file.",  # points elsewhere
    "The package was written in C by a small team.",  # "in C" is not a place
    "The kernel manages memory.",  # under 6 words
    "The kernel is the core of the operating system",  # no final period
    "You can use the apt-cache command to search for packages.",  # "What can you use?" has no single answer
])
def test_no_question_rather_than_a_wrong_one(nlp, sentence):
    assert ask(nlp, sentence) == []


def test_title_question_is_answered_by_the_first_substantive_sentence(nlp):
    text = "Short intro.\n\nThe kernel is the core of the operating system and manages the memory of every process."
    got = questions_for(Section("t", "The Kernel", text), nlp)
    assert got[0].question == "What does the documentation say about The Kernel?"
    assert text[got[0].start:got[0].end] == text.split("\n\n")[1]
    assert [qa.rule for qa in got] == ["title", "copula"]


def test_answer_spans_are_the_source_sentences(nlp):
    text = ("Debian is a free operating system. The apt-get command installs packages from the archive.\n\n"
            "$ apt install foo\n$ apt remove bar\n\n"
            "The kernel is the core of the operating system. The configuration is stored in /etc/apt/sources.list.")
    got = questions_for(Section("t", "", text), nlp)
    spans = {qa.question: text[qa.start:qa.end] for qa in got}
    assert spans == {
        "What is Debian?": "Debian is a free operating system.",
        "What does the apt-get command install?": "The apt-get command installs packages from the archive.",
        "What is the kernel?": "The kernel is the core of the operating system.",
        "Where is the configuration stored?": "The configuration is stored in /etc/apt/sources.list.",
    }


def test_max_per_section_keeps_the_title_question_and_samples_the_rest(nlp):
    sentences = [f"The {w} command installs packages from the archive." for w in ("apt", "dpkg", "aptitude", "gdebi")]
    section = Section("t", "Tools", " ".join(sentences))
    got = questions_for(section, nlp, max_per_section=3, rng=random.Random(0))
    assert len(got) == 3 and got[0].rule == "title"
    with pytest.raises(ValueError):
        questions_for(section, nlp, max_per_section=0)


def test_html_sections_split_at_headings_and_drop_navigation(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>T</title><style>p{}</style></head><body><ul class='docnav'><li>Prev</li></ul>"
        "<div class='toc'><dl><dd>6.1. Syntax</dd></dl></div>"
        "<h1 class='title'>Chapter 6. The   APT Tools</h1><div class='para'>APT is\n\t a tool.</div>"
        "<h2 class='title'>6.1. Syntax</h2><div class='sidebar'><p class='title'>TIP</p>"
        "<div class='para'>Lines are\nparsed.</div></div><ul><li><div class='para'>One item.</div></li></ul>"
        "<pre class='screen'>$ apt update\n\n\n$ apt upgrade</pre></body></html>")
    got = html_sections(page)
    assert got == [
        Section("page", "The APT Tools", "APT is a tool."),
        Section("page", "Syntax", "Lines are parsed.\n\nOne item.\n\n$ apt update\n$ apt upgrade"),
    ]


def test_real_handbook_pages_give_sensible_volume(nlp, shared_data):
    root = shared_data / "docs" / "debian-handbook-en"
    sections = [s for name in ("apt.html", "sect.apt-get.html", "sect.ldap-directory.html")
                for s in html_sections(root / name)]
    assert 15 <= len(sections) <= 40 and all(s.title and s.text for s in sections)
    qas = [(s, qa) for s in sections for qa in questions_for(s, nlp, rng=random.Random(0))]
    assert 40 <= len(qas) <= 6 * len(sections)
    assert len({qa.rule for _, qa in qas}) >= 4
    for s, qa in qas:
        answer = s.text[qa.start:qa.end]
        assert qa.question.endswith("?") and answer.endswith(".") and answer == answer.strip()
    with pytest.raises(ValueError):
        handbook_sections(root / "no-such-folder")
