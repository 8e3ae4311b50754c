"""evaluation.metrics on hand-computed values: retrieval (ir-measures, checked against the definition the
reports used before it), answers, citations, repetition, faithfulness, speed."""

from __future__ import annotations

import math
import random

import pytest

from evaluation.metrics import (
    citation_correct, contains_answer, is_refusal, percentile, repeated_ngram_rate, retrieval_metrics, summarize,
    token_f1, verbatim_faithful, well_formed,
)
from pipeline.text import REFUSAL
from pipeline.types import Citation, GenerationResult, GenerationTrace

PARIS = "Paris is the capital of France, and it has been since the tenth century. Lyon is smaller."
GIVEN = {1, 4}  # passage 1 (Paris, relevant) and passage 4 (Berlin, a distractor)
ANSWERABLE = {"relevant": {1}, "answerable": True}
UNANSWERABLE = {"relevant": set(), "answerable": False}


def result(text: str, cited=(), raw: str = "") -> GenerationResult:
    return GenerationResult(text=text, raw_text=raw, trace=GenerationTrace(generator="test"),
                            citations=[Citation(marker=i + 1, passage_number=n) for i, n in enumerate(cited)])


# -- retrieval -------------------------------------------------------------------------------------------
def test_retrieval_metrics_by_hand():
    ranked = [{"x"}, {"x"}, {"a"}, {"b"}]  # two passages of x (one document), then gold a, then gold b
    m = retrieval_metrics(ranked, {"a", "b", "c"}, k=4)
    # documents x, a, b at ranks 1-3; ideal: three gold documents at ranks 1-3
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["recall"] == pytest.approx(2 / 3) and m["hit"] is True and m["mrr"] == pytest.approx(1 / 2)
    assert m["ndcg"] == pytest.approx(dcg / ideal)  # 0.5307
    assert retrieval_metrics([{"x"}], {"a"}, k=1) == {"recall": 0.0, "hit": False, "mrr": 0.0, "ndcg": 0.0}
    assert retrieval_metrics([], {"a"}, k=3) == {"recall": 0.0, "hit": False, "mrr": 0.0, "ndcg": 0.0}


def test_retrieval_metrics_cut_at_k_and_count_shared_files_for_every_id():
    # k=2: gold b at rank 3 is not retrieved
    m = retrieval_metrics([{"x"}, {"a"}, {"b"}], {"a", "b"}, k=2)
    assert m["recall"] == 0.5 and m["mrr"] == 0.5
    assert m["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # one file stored for two gold ids (identical texts): retrieving it finds both
    m = retrieval_metrics([{"a", "b"}, {"x"}], {"a", "b"}, k=2)
    assert m["recall"] == 1.0 and m["hit"] and m["mrr"] == 1.0
    assert m["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def _before(passage_names, gold, k):
    """The definition the reports used before ir-measures computed them (validation/harness.py)."""
    ranked = []
    for names in passage_names[:k]:
        if names and not any(names == seen for seen in ranked):
            ranked.append(names)
    found = set().union(*ranked) & gold if ranked else set()
    relevant = [bool(names & gold) for names in ranked]
    first = next((i for i, r in enumerate(relevant) if r), None)
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(relevant) if r)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), k)))
    return {"recall": len(found) / len(gold), "hit": first is not None,
            "mrr": 0.0 if first is None else 1 / (first + 1), "ndcg": dcg / ideal if ideal else 0.0}, sum(relevant)


def test_retrieval_metrics_match_the_definition_they_replaced():
    rng = random.Random(0)
    names = ["a", "b", "c", "d", "x", "y", "z"]
    for _ in range(500):
        k = rng.randint(1, 8)
        passages = [set(rng.sample(names, rng.choice([0, 1, 1, 1, 2]))) for _ in range(rng.randint(0, 10))]
        gold = set(rng.sample(names[:5], rng.randint(1, 3)))
        old, n_relevant = _before(passages, gold, k)
        new = retrieval_metrics(passages, gold, k)
        assert new["recall"] == pytest.approx(old["recall"]) and new["hit"] == old["hit"]
        assert new["mrr"] == pytest.approx(old["mrr"])
        if n_relevant <= len(gold):
            assert new["ndcg"] == pytest.approx(old["ndcg"]), (passages, gold, k)
        else:  # more relevant documents than gold sources: the old ideal was too small (nDCG above 1)
            assert new["ndcg"] <= 1.0 + 1e-9


def test_summary_means_shares_and_latency():
    rows = [{"status": "pass", "token_f1": 1.0, "exact_match": True, "contains_gold": None, "repairs": 0,
             "citation_recall": 1.0, "citation_precision": 0.5, "evidence_recall": None, "refusal": False,
             "gold_given": 1, "retrieval": {"recall": 1.0, "hit": True, "mrr": 1.0, "ndcg": 1.0}, "seconds": 1.0,
             "generate_s": 0.5, "tokens_per_s": 10.0},
            {"status": "fail", "token_f1": 0.0, "exact_match": False, "contains_gold": None, "repairs": 1,
             "citation_recall": 0.0, "citation_precision": None, "evidence_recall": 0.0, "refusal": True,
             "gold_given": 1, "retrieval": {"recall": 0.5, "hit": False, "mrr": 0.0, "ndcg": 0.0}, "seconds": 3.0,
             "generate_s": 1.5, "tokens_per_s": None},
            {"error": "boom", "seconds": 9.0}]
    records = [{"answerable": True}, {"answerable": True}, {"answerable": False}]
    s = summarize(rows, records)
    assert s["n"] == 2 and s["errors"] == 1
    assert s["token_f1"] == 0.5 and s["exact_match"] == 0.5 and s["contains_gold"] is None
    assert s["pass"] == 0.5 and s["fail"] == 0.5 and s["warn"] == 0.0 and s["repaired"] == 0.5
    assert s["citation_precision"] == 0.5 and s["evidence_recall"] == 0.0
    assert s["refusal_answerable"] == 0.5 and s["refusal_unanswerable"] is None and s["refusal_answerable_gold"] == 0.5
    assert s["recall_at_k"] == 0.75 and s["hit_at_k"] == 0.5 and s["mrr"] == 0.5 and s["ndcg"] == 0.5
    assert s["latency_median_s"] == 2.0 and s["latency_p95_s"] == pytest.approx(2.9)
    assert s["generate_median_s"] == 1.0 and s["tokens_per_s"] == 10.0


def test_contains_answer_and_percentile():
    assert contains_answer("The game was in Tampa, Florida [1].", ["Tampa, Florida", "Tampa"])
    assert not contains_answer("The game was in Tampax.", ["Tampa"])
    # a name inside a dotted path or a call: "django.core.mail.BadHeaderError" holds "BadHeaderError"
    assert contains_answer("send_mail() will raise django.core.mail.BadHeaderError [1]", ["BadHeaderError"])
    assert contains_answer("call order_by() with no parameters [1]", ["order_by()"])
    assert not contains_answer("sort it with an ORDER BY clause [1]", ["order_by()"])  # the alias stays one word
    assert not contains_answer("django.core.mail.BadHeaderErrors [1]", ["BadHeaderError"])
    assert not contains_answer("at most 2.5 MB, or 1,000 fields [1]", ["5"]) and not contains_answer("1,000", ["000"])
    assert contains_answer("pool_timeout=30 - seconds to wait [1]", ["30"])
    # a name with punctuation in it, written whole inside a call: each normalisation glues or splits it
    assert contains_answer("conn = aiohttp.TCPConnector(local_addr=('127.0.0.1', 0)) [1]", ["local_addr"])
    assert contains_answer("await resp.json(content_type=None). [1]", ["content_type=None"])
    assert not contains_answer("conn = TCPConnector(max_local_addr=1) [1]", ["local_addr"])  # inside a longer name
    assert not contains_answer("needs v2.5.1 [1]", ["2.5"])  # inside a longer number
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 95) is None


# -- token_f1 and refusals -------------------------------------------------------------------------------
def test_f1_ignores_markers_case_punctuation_and_articles():
    assert token_f1("paris is THE capital of France[1][2].", "Paris is the capital of France [1, 2]") == 1.0


def test_f1_partial_overlap():
    # pred: paris capital (2 tokens); gold: paris is capital of france (5): P=1, R=0.4
    assert token_f1("Paris, capital.", "Paris is the capital of France.") == pytest.approx(2 * 0.4 / 1.4)


def test_f1_empty_answer_scores_zero():
    assert token_f1("", "Paris [1].") == 0.0
    assert token_f1("[1]", "Paris [1].") == 0.0


@pytest.mark.parametrize("pred", [REFUSAL, "the passages do NOT contain the answer [2]",
                                  "Sorry, the passage does not contain the answer.", "They do not contain an answer."])
def test_refusal_variants(pred):
    assert is_refusal(pred)
    assert token_f1(pred, REFUSAL) == 1.0
    assert token_f1(pred, "Paris is the capital [1].") == 0.0


def test_refusal_needs_the_phrase_not_its_words():
    assert not is_refusal("The answer is contained in the passages.")
    assert not is_refusal("")
    assert token_f1("Paris [1].", REFUSAL) == 0.0
    assert token_f1("", REFUSAL) == 0.0


# -- citations and form ----------------------------------------------------------------------------------
def test_citation_correct_answerable():
    assert citation_correct(result("Paris [1].", [1]), **ANSWERABLE)
    assert not citation_correct(result("Paris [1][2].", [1, 4]), **ANSWERABLE)  # one distractor cited
    assert not citation_correct(result("Paris."), **ANSWERABLE)  # nothing cited
    assert not citation_correct(result(REFUSAL), **ANSWERABLE)


def test_citation_correct_unanswerable():
    assert citation_correct(result(REFUSAL), **UNANSWERABLE)
    assert not citation_correct(result(REFUSAL + " [1]", [1]), **UNANSWERABLE)
    assert not citation_correct(result("Paris [1].", [1]), **UNANSWERABLE)


def test_well_formed_reads_raw_markers():
    assert well_formed(result("Paris [1][2].", raw="Paris [1][4]."), GIVEN)
    assert well_formed(result("Paris [1][2].", raw="Paris [1, 4]."), GIVEN)
    # finalize_citations dropped [3] from the text; the raw text shows the model cited a passage not given
    assert not well_formed(result("Paris [1].", raw="Paris [1][3]."), GIVEN)
    assert not well_formed(result("Paris.", raw="Paris."), GIVEN)
    assert not well_formed(result(""), GIVEN)
    assert well_formed(result("Paris [1]."), GIVEN)  # no raw text: the text is read
    assert well_formed(result(REFUSAL), GIVEN)  # a refusal needs no marker


# -- repetition and faithfulness -------------------------------------------------------------------------
def test_repeated_ngram_rate():
    assert repeated_ngram_rate(["a b c a b c"]) == pytest.approx(1 / 4)  # abc bca cab abc
    assert repeated_ngram_rate(["x y z [1]. X y z [2]."]) == pytest.approx(1 / 4)  # markers and case ignored
    # repeats are counted within an answer, pooled over answers: 1 repeat of 4 + 0 of 2
    assert repeated_ngram_rate(["a b c a b c", "a b c d"]) == pytest.approx(1 / 6)
    assert repeated_ngram_rate(["", "too short"]) == 0.0


def test_verbatim_quote_is_faithful():
    text = "Paris is the capital of France, and it has been since the tenth century [1]."
    assert verbatim_faithful(text, [PARIS]) is True
    # case and punctuation kept: only the final full stop may differ
    assert verbatim_faithful("Paris is the capital of France [1].", [PARIS]) is True


def test_line_breaks_end_sentences():
    # a model echoing the prompt's layout: the passage header is its own line, not part of the quote
    assert verbatim_faithful("[1] Paris\nParis is the capital of France, and it has been since", [PARIS]) is True


def test_altered_quote_is_not_faithful():
    text = "Paris is the capital of France, and it has been since the eleventh century [1]."
    assert verbatim_faithful(text, [PARIS]) is False
    assert verbatim_faithful("paris is the capital of france.", [PARIS]) is False  # case changed


def test_paraphrase_and_short_answers_are_not_quotes():
    assert verbatim_faithful("France has had its capital in Paris for over a thousand years [1].", [PARIS]) is None
    assert verbatim_faithful("Paris [1].", [PARIS]) is None
    assert verbatim_faithful("", [PARIS]) is None


def test_one_bad_quote_spoils_the_answer():
    good = "Paris is the capital of France [1]."
    bad = "Paris is the capital of France, and it has been since the ninth century [1]."
    assert verbatim_faithful(f"{good} {bad}", [PARIS]) is False
    assert verbatim_faithful(f"{bad} {good}", [PARIS]) is False
    # a sentence in the model's own words next to a good quote leaves the answer faithful
    assert verbatim_faithful(f"{good} So the French government sits in that city today.", [PARIS]) is True


def test_states_answer_reads_dates_in_any_common_spelling():
    from evaluation.metrics import states_answer

    gold = ["November 15 2020", "Nov 15, 2020", "15 November 2020"]
    assert states_answer("All 10 episodes debut on Netflix on Nov 15.", gold)  # the year left out
    assert states_answer("It premieres on the 15th of November.", gold)
    assert states_answer("Release: 11/15/2020; Publisher: Netflix", gold)
    assert states_answer("The season arrives in November 2020.", gold)  # the month with its year
    assert not states_answer("Season 3 premiered on November 15th, 2019.", gold)  # a year that disagrees
    assert not states_answer("It premieres on Nov 17.", gold) and not states_answer("Filming ended in 2020.", gold)
    assert states_answer("GPT-3 came out on June 11, 2020.", ["June 2020"])
    assert not states_answer("It came out in June.", ["June 2020"])  # a month answer needs its year
    assert states_answer("It was founded by Jan Koum.", ["Jan Koum"])  # plain answers as contains_answer
