"""Which part of a cited passage supports an answer sentence (what the app highlights)."""

from validation.evidence import evidence_spans

PASSAGE = ("The lease starts on 1 April 2024.  The lease ends on 31 March 2027,\nunless renewed in writing. "
           "Rent is due on the first day of each month.")


def spans(claims):
    return [PASSAGE[a:b] for a, b in evidence_spans(claims, PASSAGE)]


def test_a_verbatim_quote_is_found_across_whitespace_and_markers():
    assert spans(["The lease ends on 31 March 2027, unless renewed in writing. [1]"]) == [
        "The lease ends on 31 March 2027,\nunless renewed in writing."]


def test_a_paraphrase_finds_the_sentence_sharing_most_of_its_terms():
    assert spans(["According to the contract, the lease ends in March 2027 [1]."]) == [
        "The lease ends on 31 March 2027,\nunless renewed in writing."]


def test_nothing_is_highlighted_when_nothing_supports_the_claim():
    assert spans(["Parking permits cost 35 euros a month."]) == []
    assert spans(["", "[2]"]) == []


def test_several_claims_give_sorted_merged_spans():
    out = spans(["Rent is due on the first day of each month.", "The lease starts on 1 April 2024."])
    assert out == ["The lease starts on 1 April 2024.", "Rent is due on the first day of each month."]
