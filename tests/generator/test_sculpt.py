"""The bundled answer model: data building, featurizing, targets, the trainer, the samplers, the checkpoint.

The model tests use the real MiniLM base (from its pip package) with a small canvas; the overfit test
trains a fresh model on one example and checks that both samplers then write the gold answer verbatim
with the right citation, which exercises the loss, the pointer, the continuation bonus and rendering.
"""

from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest
import torch

from generator.prompt import REFUSAL
from generator.sculpt import (
    MASK, OutputSpace, SculptConfig, SculptGenerator, SculptSampling, build_model, build_sculpt, bundled_checkpoint,
    featurize, load_checkpoint, render, save_checkpoint,
)
from generator.sculpt.features import sentence_id
from generator.sculpt.grammar import Selection, choose
from generator.sculpt.training.data import (
    HELDOUT, TRAIN, Item, PassageText, Span, chunking_eval_items, make_example, pack_passages, scifact_items,
)
from generator.sculpt.training.targets import answer_targets
from generator.sculpt.training.train import TrainConfig, _init_worker, diffusion_loss, make_batch, train
from pipeline.types import GenerationRequest, Passage
from pipeline.errors import ConfigError, ModelLoadError

P1 = ("The Debian installer runs from a USB key. It asks for the language first, then the keyboard layout. "
      "Partitioning comes after the network setup.")
P2 = "Package archives are listed in /etc/apt/sources.list, one repository per line. APT reads it on update."
P3 = "Systemd starts services in parallel. Its unit files live in /lib/systemd/system."
QUESTION = "Where are package archives listed?"
ANSWER = "Package archives are listed in /etc/apt/sources.list, one repository per line."


def _item() -> Item:
    s = P2.index(ANSWER)
    return Item("t/0", "test", "doc", QUESTION, [PassageText("APT", P2)], [Span(0, s, s + len(ANSWER))],
                [PassageText("Installer", P1), PassageText("Systemd", P3)])


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model(SculptConfig(slots=24, max_passage_tokens=64))


def test_pack_passages_keeps_text_and_caps_length():
    text = "Intro paragraph.\n\n" + " ".join(f"Sentence number {i} is here." for i in range(80)) + "\n\nEnd."
    spans = pack_passages(text, max_words=50)
    assert all(len(text[a:b].split()) <= 50 for a, b in spans)
    words = [w for a, b in spans for w in text[a:b].split()]
    assert words == text.split()  # nothing lost, nothing doubled


def test_make_example_shuffles_and_tracks_the_relevant_passage():
    ex = make_example(_item(), random.Random(3), k=3)
    assert sorted(p.text for p in ex.passages) == sorted([P1, P2, P3])
    (rel,) = [i for i, r in enumerate(ex.relevant) if r]
    assert ex.passages[rel].text == P2 and ex.segments[0].passage == rel
    assert ex.gold == f"{ANSWER} [{rel + 1}]"
    unanswerable = make_example(_item(), random.Random(3), k=3, unanswerable=True)
    assert not unanswerable.answerable and not any(unanswerable.relevant) and unanswerable.gold == REFUSAL


def test_splits_are_by_document_and_distractors_hold_no_evidence(shared_data):
    for items in (chunking_eval_items(shared_data), scifact_items(shared_data)):
        train_docs = {i.doc for i in items[TRAIN]}
        held_docs = {i.doc for i in items[HELDOUT]}
        assert items[TRAIN] and items[HELDOUT] and not train_docs & held_docs
        for item in items[TRAIN][:200] + items[HELDOUT][:200]:
            evidence = [item.relevant[s.passage].text[s.start:s.end] for s in item.spans]
            assert all(e.strip() for e in evidence)
            assert not any(e in d.text for e in evidence for d in item.distractors)


def test_targets_render_back_to_the_gold_answer_verbatim(small):
    model, tok = small
    ex = make_example(_item(), random.Random(0), k=3)
    batch = featurize(tok, model.cfg, [ex.question], [[p.text for p in ex.passages]])
    targets = answer_targets(tok, model.cfg, model.vocab_size, batch,
                             [[(s.passage, s.start, s.end) for s in ex.segments]])
    passages = [Passage(number=i + 1, text=p.text) for i, p in enumerate(ex.passages)]
    space = OutputSpace.of(model.vocab_size, batch.shape)
    text = render(targets[0], batch, passages, space, tok)
    assert text == ex.gold  # case, the path and punctuation come back exactly (the tokenizer is uncased)
    refusal = answer_targets(tok, model.cfg, model.vocab_size, batch, [[]])
    assert render(refusal[0], batch, passages, space, tok) == REFUSAL


def test_question_match_features_mark_question_words(small):
    model, tok = small
    batch = featurize(tok, model.cfg, [QUESTION], [[P2, P3]])
    B, P, T = batch.shape
    ids = batch.input_ids.reshape(B, P * T)[0]
    matched = {tok.decode([int(i)]) for i in ids[batch.match[0].astype(bool)]}
    assert {"package", "archives", "listed"} <= matched and "systemd" not in matched
    assert batch.bucket[0].max() > 0


def test_output_space_gives_every_choice_one_id():
    space = OutputSpace(vocab=10, positions=6, passages=2)  # two passages of three tokens
    ids = np.arange(space.size)
    kinds = np.stack([space.is_vocab(ids), space.is_copy(ids), space.is_cite(ids)]).astype(int)
    assert (kinds.sum(0) == 1).all()  # each id is exactly one kind ...
    assert not (space.is_vocab(MASK) or space.is_copy(MASK) or space.is_cite(MASK))  # ... and MASK is none
    assert [ids[s].tolist() for s in space.slices] == [list(range(10)), list(range(10, 16)), [16, 17]]
    assert space.copy(space.position(1, 2)) == 15 and space.locate(space.position_of(15)) == (1, 2)
    assert space.passage_of(space.cite(1)) == 1


def test_choice_follows_the_answer_grammar_and_picks_the_kind_first():
    V, M, eos = 10, 6, 1  # two passages of three positions: sentences {0, 1}, {2}, {3, 4, 5}
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 1, *[sentence_id(1, 0)] * 3])
    starts = np.array([1, 0, 1, 1, 0, 0])
    K = space.size
    logp = np.full((4, K), -30.0)
    logp[0, 3] = -1.2  # first slot: one word at 0.30 against sentence starts at 0.35 each (0.70 in total) ...
    logp[0, [V + 0, V + 2]] = -1.05
    logp[0, V + 4] = 0.0  # ... and a mid-sentence position: its sentence has the most mass, opened at its start
    logp[1, V + 2] = -0.1  # after a cite: position 2 is already copied, position 3 opens the next sentence
    logp[1, V + 3] = -2.5
    logp[1, V + 4] = -0.1  # not a sentence start
    logp[2, V + 5] = -0.1  # after copying 3: only 4 (continue) or citing passage 2 (stop) are allowed
    logp[2, V + M + 1] = -1.0
    logp[2, V + M] = -0.05  # citing passage 1 after a quote from passage 2: banned
    logp[3, eos] = -0.1  # after a sentence's last token the citation is due, not EOS
    logp[3, V + M] = -3.0
    rows = np.array([[-1] * 6, [V + 2, V + M, -1, -1, -1, -1], [V + 3, *[-1] * 5], [V + 2, *[-1] * 5]])
    only = np.array([0, 2, 1, 1])
    plain = Selection(refuse=False, score=np.zeros(M), starts=starts.astype(bool), more_cut=float("-inf"))
    got = choose(logp, rows, only, space, eos, sentence, plain).tolist()
    assert got == [V + 3, V + 3, V + M + 1, V + M]


@pytest.mark.slow  # minutes on 2 busy cores (--durations, issue 16)
def test_overfit_one_example_then_both_samplers_answer_verbatim_with_the_right_citation(small, tmp_path):
    model, tok = small
    ex = make_example(_item(), random.Random(1), k=3)
    batch = featurize(tok, model.cfg, [ex.question], [[p.text for p in ex.passages]])
    targets = answer_targets(tok, model.cfg, model.vocab_size, batch,
                             [[(s.passage, s.start, s.end) for s in ex.segments]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(120):  # the decoding assertions below fail unless this learned the answer
        loss, _ = diffusion_loss(model, tok, batch.to("cpu"), targets, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(model, tmp_path / "ckpt", {"test": True})
    request = GenerationRequest(question=ex.question, passages=tuple(
        Passage(number=i + 1, text=p.text, chunk_id=f"c{i}") for i, p in enumerate(ex.passages)))
    rel = ex.relevant.index(True) + 1
    results = {}
    for sampler in ("fast", "naive"):
        states = list(SculptGenerator(model_path=tmp_path / "ckpt", sampler=sampler).stream(request))
        assert states[0].masked > 0 and "░" in states[0].text
        results[sampler] = states[-1]
    assert results["fast"].raw_text == results["naive"].raw_text  # drafting is exact: same answer, fewer calls
    result = results["fast"]
    assert result.raw_text == f"{ANSWER} [{rel}]"  # verbatim: case, the path and the comma come back exactly
    assert result.text == f"{ANSWER} [1]" and result.citations[0].passage_number == rel
    assert result.citations[0].chunk_id == f"c{rel - 1}"
    gen = SculptGenerator(model_path=tmp_path / "ckpt")
    repaired = gen.repair(request, result.raw_text, [(0, len(result.raw_text))])  # the only quote fails
    assert ANSWER not in repaired.raw_text  # its sentence is banned: another quote, or the refusal
    n3 = next(p.number for p in request.passages if p.text == P3)
    two = f"{result.raw_text} Systemd starts services in parallel. [{n3}]"
    cut = two.index("Systemd")
    kept = gen.repair(request, two, [(cut, len(two))])  # the second quote fails: the first one stays
    assert kept.raw_text.startswith(result.raw_text) and "Systemd starts" not in kept.raw_text
    results = {k: v.trace for k, v in results.items()}
    assert set(results["naive"].tokens_per_step) == {1}  # one slot per step
    assert results["fast"].steps < results["naive"].steps / 3  # the quote is drafted, many slots per call
    assert results["fast"].nfe < results["naive"].nfe
    with torch.inference_mode():  # the selector learned it too: the evidence sentence, not "none"
        memory = model.eval().encode(batch.to("cpu"))
    probs = memory.select[0].softmax(-1)
    gold_col = int(memory.sent_index[0, model.space(memory).position_of(int(targets[0, 0]))])
    assert int(probs.argmax()) == gold_col and float(probs[-1]) < 0.5


def test_selector_decides_answer_or_refuse_at_the_first_slot():
    V, M, eos = 10, 6, 1
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 1, *[sentence_id(1, 0)] * 3])
    starts = np.array([1, 0, 1, 1, 0, 0])
    logp = np.full((1, space.size), -30.0)
    logp[0, 3] = -0.1  # the decoder prefers a word (the refusal) ...
    logp[0, V + 2] = -3.0  # ... over the sentence at position 2
    logp[0, V + 3] = -2.5  # ... and over the one at 3, which the selector rates far higher
    rows, only = np.full((1, 3), -1), np.array([0])
    def pick(score, refuse):
        selection = Selection(refuse, np.array(score), starts.astype(bool), more_cut=float("-inf"))
        return int(choose(logp, rows, only, space, eos, sentence, selection)[0])

    assert pick([-5.0, -5.0, -5.0, -0.1, -0.1, -0.1], refuse=False) == V + 3
    assert pick([-5.0, -5.0, -5.0, -0.1, -0.1, -0.1], refuse=True) == 3
    assert pick([-5.0, -5.0, -0.1, -9.0, -9.0, -9.0], refuse=False) == V + 2  # now the selector favours sentence 1


def test_training_batches_depend_only_on_seed_and_step(tmp_path):
    path = tmp_path / "items.pkl"
    with path.open("wb") as f:
        pickle.dump({TRAIN: [_item()] * 5, HELDOUT: []}, f)
    cfg = TrainConfig(out=str(tmp_path), batch_size=3, k_min=2, k_max=3)
    _init_worker(str(path), cfg, SculptConfig(slots=24, max_passage_tokens=64), single_thread=False)
    a, b, c = make_batch(4), make_batch(1), make_batch(4)  # any order, any process: the same batch
    assert np.array_equal(a[0].input_ids, c[0].input_ids) and torch.equal(a[1], c[1])
    assert a[0].texts == c[0].texts
    assert not (a[0].texts == b[0].texts and torch.equal(a[1], b[1]))  # another step, another draw


def test_checkpoint_holds_only_trained_weights_and_reloads_exactly(small, tmp_path):
    model, tok = small
    model.eval()
    folder = save_checkpoint(model, tmp_path / "c")
    assert (folder / "model.safetensors").stat().st_size < 60 * 2**20
    loaded, _ = load_checkpoint(folder)
    batch = featurize(tok, model.cfg, [QUESTION], [[P1, P2]])
    canvas = torch.full((1, model.cfg.slots), -1)
    with torch.inference_mode():
        a = model(canvas, model.encode(batch.to("cpu")))
        b = loaded(canvas, loaded.encode(batch.to("cpu")))
    assert torch.allclose(a.exp(), b.exp(), atol=2e-2)  # bf16 storage
    with pytest.raises(ModelLoadError):
        load_checkpoint(tmp_path / "missing")


def test_generator_rejects_bad_options():
    with pytest.raises(ConfigError):
        SculptGenerator(sampler="greedy")
    with pytest.raises(ConfigError):
        SculptGenerator(draft_length=0)
    with pytest.raises(ConfigError, match="draft_length"):  # a misspelt option names the real ones
        SculptGenerator(draft_lenght=4)


def test_sampling_options_are_one_typed_config_that_variants_lay_over():
    gen = build_sculpt(sampler="naive", max_steps=4, name="slow")
    assert gen.config == SculptSampling(sampler="naive", max_steps=4) and gen.name == "slow"
    other = gen.with_options(draft_length=3)
    assert other.config == SculptSampling(sampler="naive", max_steps=4, draft_length=3) and other.name == "slow"
    assert gen.with_options(config=SculptSampling()).config == SculptSampling()
    with pytest.raises(ConfigError, match="cannot change"):
        gen.with_options(model_path="elsewhere")
    with pytest.raises(ConfigError):
        gen.with_options(refuse_threshold=0.0)


def test_trainer_saves_resumes_and_exports(tmp_path):
    items = {TRAIN: [_item()] * 4, HELDOUT: []}
    (tmp_path / "run").mkdir()
    with (tmp_path / "run" / "items.pkl").open("wb") as f:
        pickle.dump(items, f)
    cfg = TrainConfig(data_root=str(tmp_path), out=str(tmp_path / "run"), steps=3, batch_size=2, save_every=1,
                      stop_at=2, k_min=2, k_max=3)
    train(cfg)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert state["step"] == 2
    cfg.stop_at = None
    train(cfg)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert state["step"] == 3
    meta = (tmp_path / "run" / "meta.json").read_text()
    assert '"steps": 3' in meta and "train_items" in meta


def test_the_bundled_checkpoint_loads_and_answers_by_the_grammar():
    """The shipped model (quality is measured by benchmarks/generator_eval.py, not here): it loads from the
    package, and its answer is either the refusal or verbatim passage text, each piece cited."""
    g = SculptGenerator(model_path=bundled_checkpoint())
    passages = (Passage(number=1, text=P3), Passage(number=2, text=P1), Passage(number=3, text=P2))
    result = g.generate(GenerationRequest(question=QUESTION, passages=passages))
    if result.text == REFUSAL:
        assert not result.citations
    else:
        pieces = [x.strip() for x in re.split(r"\[\d+\]", result.raw_text) if x.strip()]
        assert pieces and all(any(piece in p.text for p in passages) for piece in pieces)
        assert result.citations and len(re.findall(r"\[\d+\]", result.raw_text)) == len(pieces)
    assert result.trace.steps >= 1 and result.trace.nfe >= 2


def test_a_quote_that_stops_inside_its_sentence_is_joined_to_the_next_by_a_written_word():
    V, M, eos, AND = 10, 6, 1, 7  # passage 0: sentence {0, 1, 2}; passage 1: sentence {3, 4, 5}
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 0, *[sentence_id(1, 0)] * 3])
    starts = np.array([1, 0, 0, 1, 0, 0]).astype(bool)
    logp = np.full((1, space.size), -30.0)
    logp[0, V + 3] = -0.1  # the model wants the next quote; the connector word is improbable to it
    mid = np.array([[V + 0, V + 1, V + M, -1, -1, -1, -1, -1]])  # "w0 w1 [1]": stopped before position 2
    whole = np.array([[V + 0, V + 1, V + 2, V + M, -1, -1, -1, -1]])  # ran to its sentence's end

    def pick(rows, joinable, connector=AND):
        slot = int(np.flatnonzero(rows[0] == -1)[0])
        selection = Selection(False, np.zeros(M), starts, float("-inf"), connector=connector,
                              joinable=np.array(joinable).astype(bool))
        return int(choose(logp, rows, np.array([slot]), space, eos, sentence, selection)[0])

    assert pick(mid, [0, 0, 0, 1, 0, 0]) == AND  # written between the two quotes
    assert pick(mid, [0, 0, 0, 0, 0, 0]) == V + 3  # "and The ...": the next quote does not read on
    assert pick(whole, [0, 0, 0, 1, 0, 0]) == V + 3  # a whole sentence needs no joining word
    assert pick(mid, [0, 0, 0, 1, 0, 0], connector=None) == V + 3  # connectors off
    after = np.array([[V + 0, V + 1, V + M, AND, -1, -1, -1, -1]])
    assert pick(after, [0, 0, 0, 1, 0, 0]) == V + 3  # then the quote it announces, never EOS or a word


def test_connectors_are_chosen_by_the_question_and_stripped_when_repairing():
    from generator.sculpt.generator import _quotes, connector_word

    assert connector_word("How does Apple's revenue compare with Google's?") == "while"
    assert connector_word("Who won the men's and women's titles?") == "and"
    answer = "Medvedev won the men's title [1] and Raducanu won the women's [2]."
    quotes = _quotes(answer)
    assert [(q, n) for q, n, _, _ in quotes] == [("Medvedev won the men's title", 1), ("Raducanu won the women's", 2)]
    assert all(answer[a: a + len(q)] == q for q, _, a, _ in quotes)


def test_joinable_starts_are_words_that_read_on_after_a_joining_word(small):
    from generator.sculpt.features import joinable_starts

    model, tok = small
    text = "The title went to Medvedev. Medvedev beat Djokovic, 200 fans cheered, the crowd left."
    batch = featurize(tok, model.cfg, ["Who won?"], [[text]])
    ok = joinable_starts(batch)
    word = {re.match(r"\w+|\S", text[a:]).group(): bool(ok[t]) for t, (a, e) in enumerate(batch.offsets[0][0])
            if e > a and (a == 0 or not text[a - 1].isalnum())}  # each word's first token
    assert word["Medvedev"] and word["200"] and word["the"]  # a name, a number, a lower-case word
    assert not word["The"]  # only ever opens a sentence


def test_a_quote_opens_only_if_its_sentence_fits_and_the_last_slot_is_a_citation():
    V, M, eos = 10, 6, 1  # passage 0: sentence {0, 1, 2}; passage 1: sentence {3, 4, 5}
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 0, *[sentence_id(1, 0)] * 3])
    starts = np.array([1, 0, 0, 1, 0, 0]).astype(bool)
    selection = Selection(False, np.zeros(M), starts, float("-inf"))
    logp = np.full((1, space.size), -30.0)
    logp[0, [V + 3, V + 5]] = -0.1  # the model wants to go on quoting

    def pick(row):
        rows = np.array([row])
        slot = int(np.flatnonzero(rows[0] == -1)[0])
        return int(choose(logp, rows, np.array([slot]), space, eos, sentence, selection)[0])

    assert pick([V + 0, V + 1, V + 2, V + M, -1, -1, -1, -1]) == V + 3  # 3 copies + a citation fit in 4 slots
    assert pick([V + 0, V + 1, V + 2, V + M, -1, -1, -1]) == eos  # not in 3: the answer ends, uncut
    assert pick([V + 3, V + 4, -1]) == V + M + 1  # the last slot cites the quote, though its sentence goes on


def test_scoring_only_some_slots_gives_the_full_canvas_scores_at_those_slots(small):
    model, tok = small
    model.eval()
    ex = make_example(_item(), random.Random(2), k=3)
    batch = featurize(tok, model.cfg, [ex.question], [[p.text for p in ex.passages]])
    space = OutputSpace.of(model.vocab_size, batch.shape)
    L = model.cfg.slots
    rows = torch.full((3, L), MASK)
    rows[1, 0] = space.copy(space.position(0, 2))
    rows[2, :2] = torch.tensor([space.copy(space.position(0, 2)), space.copy(space.position(0, 3))])
    only = torch.tensor([0, 1, 2])
    with torch.inference_mode():
        memory = model.encode(batch.to("cpu"))
        full = model(rows, memory.expand(3))
        part = model(rows, memory.expand(3), only=only)[:, 0]
    assert torch.allclose(part, full[torch.arange(3), only], atol=1e-5)


def test_a_connector_is_written_only_when_the_quote_it_announces_still_fits():
    V, M, eos, AND = 10, 6, 1, 7  # passage 0: sentence {0, 1, 2}; passage 1: sentence {3, 4, 5}
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 0, *[sentence_id(1, 0)] * 3])
    selection = Selection(False, np.zeros(M), np.array([1, 0, 0, 1, 0, 0]).astype(bool), float("-inf"),
                          connector=AND, joinable=np.ones(M, dtype=bool))
    logp = np.full((1, space.size), -30.0)
    rows = np.array([[V + 0, V + 1, V + M, -1, -1, -1, -1]])  # 4 slots left: the quote fits, "and" + it not
    assert int(choose(logp, rows, np.array([3]), space, eos, sentence, selection)[0]) == V + 3


def test_a_quoted_lead_in_is_followed_by_the_line_below_it_and_the_two_count_as_one_quote():
    V, M, eos = 10, 8, 1  # passage 0: a lead-in {0, 1} over its line {2, 3}; passage 1: a sentence {4, 5, 6, 7}
    space = OutputSpace(V, M, 2)
    sentence = np.array([0, 0, 1, 1, *[sentence_id(1, 0)] * 4])
    starts = np.array([1, 0, 1, 0, 1, 0, 0, 0]).astype(bool)
    follow = np.array([2, 2, -1, -1, -1, -1, -1, -1])
    score = np.array([3.0, 3.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])  # the other passage's sentence beats the line
    lead_in, line, other = V + 0, V + 2, V + 4

    def pick(row, **kw):
        selection = Selection(False, score, starts, 1.0, **kw)
        rows = np.array([row])
        slot = int(np.flatnonzero(rows[0] == -1)[0])
        return int(choose(np.full((1, space.size), -30.0), rows, np.array([slot]), space, eos, sentence,
                          selection)[0])

    cited = [V + 0, V + 1, V + M]  # the lead-in, cited
    assert pick([*cited, *[-1] * 9], follow=follow, max_quotes=1) == line  # its line comes next, not the end
    assert pick([*cited, *[-1] * 9], max_quotes=1) == eos  # (without the rule: the end, the lead-in alone)
    assert pick([*cited, *[-1] * 9], max_quotes=2) == other  # (or the best other sentence)
    both = [*cited, V + 2, V + 3, V + M]
    assert pick([*both, *[-1] * 6], follow=follow, max_quotes=2) == other  # the two counted as one quote
    assert pick([*both, *[-1] * 6], follow=follow, max_quotes=1) == eos
