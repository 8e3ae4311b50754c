"""MiniLM's WordPiece tokenizer through `tokenizers` (no transformers, no torch): what both runtimes and the
training data workers use."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


class WordPieceTokenizer:
    """The model folder's tokenizer.json through `tokenizers`, with the part of transformers' tokenizer API the
    sculpt model uses: call (one text or a list; special tokens, truncation, offsets), the special ids,
    tokenize, convert_tokens_to_ids, decode."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tok.no_truncation()  # the file's own (128 tokens, padding to 128) are sentence-transformers' settings
        self._tok.no_padding()
        self.vocab = self._tok.get_vocab()
        self.cls_token_id, self.sep_token_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.pad_token_id, self.unk_token_id = self.vocab["[PAD]"], self.vocab["[UNK]"]
        self.vocab_size = self._tok.get_vocab_size()

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None, return_offsets_mapping: bool = False, verbose: bool = True) -> dict:
        single = isinstance(text, str)
        encodings = self._tok.encode_batch([text] if single else list(text), add_special_tokens=False)
        ids, offsets = [], []
        for e in encodings:
            content, offs = list(e.ids), list(e.offsets)
            if add_special_tokens:
                if truncation and max_length is not None:
                    content, offs = content[: max(0, max_length - 2)], offs[: max(0, max_length - 2)]
                content, offs = [self.cls_token_id, *content, self.sep_token_id], [(0, 0), *offs, (0, 0)]
            elif truncation and max_length is not None:
                content, offs = content[:max_length], offs[:max_length]
            ids.append(content)
            offsets.append(offs)
        out = {"input_ids": ids[0] if single else ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets[0] if single else offsets
        return out

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of `text` ("deliver", "##ed"), without special tokens."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)
