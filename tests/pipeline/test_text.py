"""The core's text rules (pipeline.text, pipeline.words) and its device resolver (pipeline.device)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest
import torch

from ingest.chunk import split_sentences
from pipeline import text as T
from pipeline.device import default_dtype, loads_model, resolve_device, resolve_device_and_dtype
from pipeline.errors import ConfigError
from pipeline.words import ENTITY_NOISE, stem, tokenize


# --- markers ------------------------------------------------------------------------------------------

def test_markers_are_plain_integers_single_or_grouped():
    assert T.find_markers("A [3]. B [1, 2][4]. C [x] [2.5] [-1]") == [3, 1, 2, 4]
    assert [m.group(1) for m in T.MARKER_RE.finditer("[1,2] [ 3 ] [7]")] == ["1,2", "7"]


def test_a_marker_run_is_one_match_without_a_group():
    runs = [m.group() for m in T.MARKER_RUN_RE.finditer("a [1][2] b [3, 4] c [5]")]
    assert runs == ["[1][2]", "[3, 4]", "[5]"]
    assert T.MARKER_RUN_RE.split("a [1][2] b") == ["a ", " b"]  # no group: split keeps only the text


def test_strip_markers_leaves_no_space_before_punctuation():
    assert T.strip_markers("Paris is big [1]. It has  the Louvre [1, 2][3] , too.") == \
        "Paris is big. It has the Louvre, too."


# --- sentences ----------------------------------------------------------------------------------------

def test_sentence_rule_cuts_after_a_stop_before_a_capital_digit_quote_or_bracket():
    text = 'It ended in 1889. [2] Then "quiet" came. 3 more came! (Aside.) e.g. this stays. Why? Yes.'
    assert T.SENTENCE_RE.split(text) == [
        "It ended in 1889.", "[2] Then \"quiet\" came.", "3 more came!", "(Aside.) e.g. this stays.", "Why?", "Yes."]


def test_a_sentence_does_not_end_at_an_initial_or_a_title_before_a_name_or_number():
    text = ("We redeemed the shares held by Robert B. Saucier (\u201cSaucier\u201d), our founder. Mr. Zender and "
            "Dr. Lee, with J. F. Lawton, stayed. She is ranked No. 1 in the U.S. The rate was 0.72 vs. 1.45 here.")
    assert T.SENTENCE_RE.split(text) == [
        "We redeemed the shares held by Robert B. Saucier (\u201cSaucier\u201d), our founder.",
        "Mr. Zender and Dr. Lee, with J. F. Lawton, stayed.", "She is ranked No. 1 in the U.S.",
        "The rate was 0.72 vs. 1.45 here."]


def test_a_sentence_does_not_end_at_an_abbreviation_that_introduces_an_example():
    text = ('Your program will run much slower (eg. 20 to 30 times) than normal. Pick a driver, e.g. Psycopg, or '
            'a mode, i.e. "strict". See cf. Table 2 for more. The movie. The end.')
    assert T.SENTENCE_RE.split(text) == [
        "Your program will run much slower (eg. 20 to 30 times) than normal.",
        'Pick a driver, e.g. Psycopg, or a mode, i.e. "strict".', "See cf. Table 2 for more.", "The movie.",
        "The end."]


def test_a_title_s_number_is_no_sentence_of_its_own():
    """DocBook numbers its titles "6.34.4. EXAMPLES": cut after the number, the number was a sentence that could be
    quoted ("... interface. [1] 6.34.4. [2]") and the title no longer matched its section's name."""
    for title in ("6.34.4. EXAMPLES", "19.4.1. Memory", "Chapter 19. Server Configuration", "Table 9.33. Date/Time "
                  "Operators", "  4.1. Configuration file syntax", "Appendix A. Release Notes"):
        assert T.line_sentences(title) == [title]
    assert T.line_sentences("4.1. Syntax. The file is a list of rules.") == ["4.1. Syntax.", "The file is a list of rules."]
    assert T.line_sentences("1. Freeze the branch. Then tag it.") == ["1.", "Freeze the branch.", "Then tag it."]  # a
    # list's number stays apart from its item, and a number that closes a sentence still ends it
    assert T.line_sentences("Changed in version 2.7. The attribute is writable.") == [
        "Changed in version 2.7.", "The attribute is writable."]
    text = "Intro.\n6.34.4. EXAMPLES\nAdd it."
    assert [text[m.end():m.end() + 3] for m in T.sentence_cuts(text, 7, 23)] == []  # from the line's start


def test_the_chunk_variant_differs_where_it_says():
    # closing quotes and brackets after the stop belong to the boundary, and stay with the sentence they close
    assert split_sentences('He said "no." Then left.') == ['He said "no."', "Then left."]
    assert split_sentences("errors (and yes, there are many!) So it reads.") == [
        "errors (and yes, there are many!)", "So it reads."]
    assert split_sentences('(See [2].") Then it. Done.') == ['(See [2].")', "Then it.", "Done."]
    assert T.SENTENCE_RE.split('He said "no." Then left.') == ['He said "no." Then left.']
    # an opening quote or bracket starts a sentence only before a capital or a digit
    text = 'He said so. "...and then" it went. (see below) ok.'
    assert split_sentences(text) == [text]
    assert T.SENTENCE_RE.split(text) == ["He said so.", '"...and then" it went.', "(see below) ok."]


# --- words and stopwords ------------------------------------------------------------------------------

def test_words_are_lowercased_letters_and_digits():
    assert T.words("Don't pay $3.5M, ACME!") == ["don", "t", "pay", "3", "5m", "acme"]


def test_stop_lists_derive_from_the_question_list():
    base = T.QUESTION_STOPWORDS
    assert T.SCULPT_STOPWORDS == base | {"not"}
    assert base < T.BM25_STOPWORDS < T.CLAIM_STOPWORDS
    assert len(base) == 38 and len(T.BM25_STOPWORDS) == 63 and len(T.CLAIM_STOPWORDS) == 118
    assert {"passage", "said"} <= T.CLAIM_STOPWORDS and "passage" not in T.BM25_STOPWORDS


def test_bm25_tokenize_stems_and_drops_stopwords():
    assert tokenize("The kernel’s deliveries were delivered") == ["kernel", "deliveri", "deliv"]
    assert tokenize("The kernel's deliveries", stemmed=False) == ["kernel's", "deliveries"]
    assert stem("indexes") == stem("index") and {"inc", "corpor", "the"} & ENTITY_NOISE == {"inc", "corpor"}


def test_refusal_is_one_of_the_refusal_phrases():
    assert T.REFUSAL == "The passages do not contain the answer."
    assert T.REFUSAL_PHRASES[0] == T.REFUSAL
    from generator.prompt import REFUSAL
    assert REFUSAL is T.REFUSAL


def test_the_core_text_and_device_modules_import_nothing_heavy():
    code = ("import sys, pipeline.text, pipeline.device; "
            "bad = [m for m in sys.modules if m == 'torch' or m.split('.')[0] in "
            "('generator', 'ingest', 'validation', 'app', 'evaluation', 'benchmarks')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- devices ------------------------------------------------------------------------------------------

def test_resolve_device_reads_the_settings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device_and_dtype("cpu") == (torch.device("cpu"), torch.float32)
    assert default_dtype(torch.device("cpu")) == torch.float32
    for bad in ("tpu", "cuda:x", "gpu", ""):
        with pytest.raises(ConfigError, match="device must be"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_without_cuda_auto_is_cpu_and_cuda_is_a_clear_error():
    assert resolve_device() == resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device(name)


def test_the_default_embedder_is_chosen_without_importing_torch_on_a_cpu_build():
    """A CPU-only torch (what the README installs) cannot make 'auto' a GPU: the ONNX embedder is chosen
    from torch's version.py alone, and a process that runs no torch model never imports torch."""
    code = ("import sys; from pipeline.device import gpu_build; from pipeline.embedding import make_embedder; "
            "e = make_embedder(); print(type(e).__name__, 'torch' in sys.modules, gpu_build())")
    name, imported, gpu = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if torch.version.cuda is None and torch.version.hip is None and getattr(torch.version, "xpu", None) is None:
        assert (name, imported, gpu) == ("OnnxEmbedder", "False", "False")
    else:  # a GPU build: torch is asked whether a GPU is there
        assert gpu == "True"



def test_model_loads_take_turns_across_threads():
    """transformers builds a model under process-wide switches, so a loader waits while another thread loads
    (the app's warm-up thread and a first request may both load)."""
    from generator.sculpt.checkpoint import load_encoder

    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    @loads_model
    def slow_load():
        inside.set()
        release.wait(60)

    holder = threading.Thread(target=slow_load)
    holder.start()
    assert inside.wait(60)
    loader = threading.Thread(target=lambda: (load_encoder(), done.set()))
    loader.start()
    assert not done.wait(1.0)  # the encoder (0.2 s to load alone) waits for the other load
    release.set()
    holder.join()
    loader.join(60)
    assert done.is_set()


@pytest.mark.gpu
def test_with_cuda_auto_is_cuda_in_bf16():
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device_and_dtype("cuda")[1] in (torch.bfloat16, torch.float16)
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_idf_cover_is_the_share_of_the_questions_idf_mass_and_exact():
    texts = [{"amber", "basalt", "cobalt"}, {"dolomite", "ember", "flint"}, {"basalt"}, {"ember"},
             {"cobalt"}, {"cobalt", "x"}, {"flint"}, {"flint", "y"}, {"z"}]
    asked = ["amber", "basalt", "cobalt", "dolomite", "ember", "flint", "amber"]
    covers = T.idf_cover(asked, texts)
    assert covers[0] == covers[1]  # the same IDF values, summed exactly whatever the order
    assert covers[8] == 0.0 and covers[0] + covers[1] == pytest.approx(1.0)
    n = len(texts)
    idf = {w: math.log(1 + n / (1 + sum(w in t for t in texts))) for w in set(asked)}
    assert covers[2] == pytest.approx(idf["basalt"] / sum(idf.values()))
    assert T.idf_cover([], texts) == [0.0] * n and T.idf_cover(asked, []) == []
