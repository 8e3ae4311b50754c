"""Retraining the sentence selector alone (generator/sculpt/training/selector.py, `sculptrag train-selector`)."""

import json
import pickle

import pytest
import torch

from generator.sculpt.training import selector as SEL
from generator.sculpt.training.data import HELDOUT, TRAIN, Item, PassageText, Span

FACTS = [("What does apt-get install?", "The apt-get command installs packages from the Debian archive."),
         ("When do services start?", "Systemd starts the enabled services at boot time."),
         ("What does dpkg read?", "The dpkg tool reads the control file of each binary package."),
         ("Where are logs kept?", "The journal keeps the logs of every service in binary files.")]


def _items() -> list[Item]:
    out = []
    for i, (q, text) in enumerate(FACTS):
        others = [PassageText("", t) for _, t in FACTS if t != text]
        out.append(Item(str(i), "synthetic/handbook" if i % 2 else "docs/debian-policy", f"d{i}", q,
                        [PassageText("", text)], [Span(0, 0, len(text))], others))
    out.append(Item("r", "rgb", "r", "Who won?", [PassageText("", "Nadal won the final.")], [Span(0, 0, 20)],
                    [PassageText("", "The final was played in Paris.")]))
    return out


def test_only_the_selector_heads_move_and_they_learn_the_training_examples(tmp_path, monkeypatch):
    from generator.sculpt.checkpoint import bundled_checkpoint, load_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    (run / "items.pkl").write_bytes(pickle.dumps({TRAIN: _items() * 3, HELDOUT: _items()[:2]}))
    cfg = SEL.SelectorConfig(out=str(run), epochs=15, lr=3e-3, k_min=2, k_max=3, exclude=("rgb",), encode_batch=4)
    SEL.train_selector(cfg)
    meta = json.loads((run / "meta.json").read_text())
    parent = json.loads((bundled_checkpoint() / "meta.json").read_text())
    assert meta["steps"] == parent["steps"] and "answer_threshold" not in meta  # the parent's card, not its threshold
    sel = meta["selector"]
    assert sel["left_out"] == ["rgb"] and "rgb" not in sel["train_items"]
    assert sel["after"]["train"]["loss"] < sel["before"]["train"]["loss"]
    card = (run / "README.md").read_text()
    assert card.startswith((bundled_checkpoint() / "README.md").read_text().rstrip())
    assert "sculptrag train-selector --init-from bundled --epochs 15 --lr 0.003 --exclude rgb" in card

    got, _ = load_checkpoint(run)
    shipped, _ = load_checkpoint(bundled_checkpoint())
    new, old = got.trainable_state(), shipped.trainable_state()
    moved = {k for k in new if not torch.equal(new[k], old[k])}
    assert moved and all(k.startswith(("select_mlp.", "none_mlp.")) for k in moved)

    def never(*a, **k):
        raise AssertionError("the cached features should have been reused")
    monkeypatch.setattr(SEL, "extract", never)  # other head settings: the same features, no encoder pass
    SEL.train_selector(SEL.SelectorConfig(**{**cfg.__dict__, "epochs": 2}))
    with pytest.raises(AssertionError, match="cached features"):  # another draw count reads again
        SEL.train_selector(SEL.SelectorConfig(**{**cfg.__dict__, "draws": 2}))


def test_corpus_weights_give_each_corpus_weight_by_the_root_of_its_size():
    w = SEL.corpus_weights(["a"] * 9 + ["b"], 0.5)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[9] / w[0]) == pytest.approx(3.0)  # 9^-1/2 against 1^-1/2
    assert float(w[:9].sum() / w[9]) == pytest.approx(3.0)  # so "a" counts 3x "b", not 9x


def test_the_binary_objective_reads_each_logits_level_where_the_softmax_reads_only_their_differences():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]])  # two sentences, a padding column, "none"
    counts = torch.tensor([[1.0, 1.0, 0.0]])
    gold = torch.tensor([[True, False, False, False]])
    shifted = logits + torch.tensor([[3.0, 3.0, 3.0, 3.0]])  # every column up alike, "none" too
    soft = SEL.selector_objective(logits, counts, gold, "softmax")
    assert torch.allclose(SEL.selector_objective(shifted, counts, gold, "softmax"), soft)
    binary = SEL.selector_objective(logits, counts, gold, "binary")
    assert float(SEL.selector_objective(shifted, counts, gold, "binary")) > float(binary)  # the wrong one is up too
    swapped = torch.tensor([[-1.0, 2.0, 0.5, 0.0]])
    assert float(SEL.selector_objective(swapped, counts, gold, "binary")) > float(binary)
    assert torch.allclose(SEL.selector_objective(logits, counts, gold, "both"), soft + binary)
    padded = logits.clone()
    padded[0, 2] = 40.0  # a padding column's logit counts for nothing
    assert torch.allclose(SEL.selector_objective(padded, counts, gold, "binary"), binary)
    with pytest.raises(ValueError, match="objective"):
        SEL.selector_objective(logits, counts, gold, "hinge")


def test_a_run_without_held_out_items_still_writes_its_card(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "items.pkl").write_bytes(pickle.dumps({TRAIN: _items()[:4], HELDOUT: []}))
    SEL.train_selector(SEL.SelectorConfig(out=str(run), epochs=1, k_min=2, k_max=2))
    assert "held out - -> -" in (run / "README.md").read_text()


def test_the_command_refuses_an_unknown_corpus_or_missing_data_before_reading_anything(tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli

    runner = CliRunner()
    bad = runner.invoke(cli, ["train-selector", "--out", str(tmp_path / "r"), "--exclude", "wikipedia"])
    assert bad.exit_code == 2 and "unknown corpus wikipedia" in bad.output
    missing = runner.invoke(cli, ["train-selector", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no data folder" in missing.output
    assert not (tmp_path / "r").exists()
