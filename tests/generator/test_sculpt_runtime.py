"""The bundled model's numpy runtime (generator/sculpt/runtime.py) computes what the torch model computes.

A CPU answer runs on numpy so that it never imports torch (a cold `sculptrag ask` saves ~1.3 s); torch stays
the trainer's and the GPU's. These hold the two to each other on the shipped checkpoint: the encoded
memory, the selector and the log-probabilities within 1e-4, and the same answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from generator.sculpt import SculptGenerator, bundled_checkpoint, featurize, load_checkpoint, load_runtime
from generator.sculpt.runtime import read_safetensors
from generator.sculpt.space import MASK, OutputSpace
from pipeline.errors import ConfigError
from pipeline.types import GenerationRequest, Passage

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "Package archives are listed in /etc/apt/sources.list, one repository per line. APT reads it on update.",
    "Systemd starts services in parallel. Its unit files live in /lib/systemd/system.",
    "Delivery report\nTo Whom it May Concern:\nThere were 20,000 bottles of water, 10,000 blankets, and 200 laptops "
    "delivered on January 23, 2023. A total of 3 trucks were used for 15 hours.\nBest Regards,",
    "Item | 2021: $770,248 | 2020: $668,525",
]


@pytest.fixture(scope="module")
def models():
    folder = bundled_checkpoint()
    model, tok = load_checkpoint(folder)
    return model, load_runtime(folder), tok


def _close(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    finite = np.isfinite(a)
    assert np.array_equal(finite, np.isfinite(b))  # the same entries are -inf (masked)
    assert np.abs(a[finite] - b[finite]).max() <= atol


def test_safetensors_are_read_as_torch_reads_them(tmp_path):
    state = {"w": torch.randn(3, 5).to(torch.bfloat16), "b": torch.randn(4), "h": torch.randn(2).half(),
             "i": torch.arange(3)}
    save_file(state, str(tmp_path / "m.safetensors"))
    got = read_safetensors(tmp_path / "m.safetensors")
    for name, t in state.items():
        want = t.numpy() if name == "i" else t.float().numpy()
        assert got[name].dtype == want.dtype and np.array_equal(got[name], want), name


def test_numpy_encoding_and_scores_are_the_torch_models(models):
    model, rt, tok = models
    questions = ["How many laptops were delivered on January 23, 2023?", "Where do unit files live?"]
    batch = featurize(tok, model.cfg, questions, [TEXTS, TEXTS[:2]])  # passages of many lengths, one row padded
    with torch.inference_mode():
        ref = model.encode(batch.to("cpu"))
    mem = rt.encode(batch)
    real = batch.attention.reshape(batch.shape[0], -1)  # (padding holds no state in the numpy runtime)
    for name in ("states", "copy_keys", "copy_inputs"):
        _close(getattr(ref, name).numpy()[real], getattr(mem, name)[real], 1e-4)
    for name in ("summary", "cite_keys", "cite_inputs", "select"):
        _close(getattr(ref, name).numpy(), getattr(mem, name), 1e-4)
    assert np.array_equal(ref.sent_index.numpy(), mem.sent_index)

    batch = featurize(tok, model.cfg, questions[:1], [TEXTS])  # a request's memory, repeated over canvas rows
    with torch.inference_mode():
        ref = model.encode(batch.to("cpu"))
    mem = rt.encode(batch)
    space = OutputSpace.of(rt.vocab_size, batch.shape)
    copies = np.flatnonzero(batch.copyable[0])
    canvas = np.full((3, model.cfg.slots), MASK, dtype=np.int64)
    canvas[1, :2] = [space.copy(copies[4]), space.copy(copies[5])]  # a quote under way
    canvas[2, :3] = [space.copy(copies[4]), space.cite(0), 1012]  # a citation, then a written word
    one = [np.array([0, 2, 3])]  # one slot of each row
    for only in (None, one):
        with torch.inference_mode():
            want = model.forward_many([torch.from_numpy(canvas)], [ref.expand(3)],
                                      None if only is None else [torch.from_numpy(o) for o in only])
        got = rt.forward_many([canvas], [mem.expand(3)], only)
        _close(want[0].numpy(), got[0], 1e-4)


def test_two_requests_in_one_numpy_call_score_as_each_alone(models):
    _, rt, tok = models
    a = featurize(tok, rt.cfg, ["Where do unit files live?"], [TEXTS[:2]])
    b = featurize(tok, rt.cfg, ["How many laptops?"], [TEXTS])
    ma, mb = rt.encode(a), rt.encode(b)
    ca = np.full((2, rt.cfg.slots), MASK, dtype=np.int64)
    cb = np.full((1, rt.cfg.slots), MASK, dtype=np.int64)
    only = [np.array([0, 1]), np.array([[0, 3]])]
    together = rt.forward_many([ca, cb], [ma.expand(2), mb], only)
    _close(rt.forward_many([ca], [ma.expand(2)], only[:1])[0], together[0], 1e-5)
    _close(rt.forward_many([cb], [mb], only[1:])[0], together[1], 1e-5)


QUESTIONS = [
    ("How many laptops were delivered on January 23, 2023?", TEXTS),
    ("Where are package archives listed, and where do systemd unit files live?", TEXTS[:2]),
    ("What is the boiling point of mercury in kelvin?", TEXTS[:2]),
]


@pytest.mark.parametrize("question,texts", QUESTIONS)
def test_both_runtimes_write_the_same_answer(question, texts):
    request = GenerationRequest(question=question, passages=tuple(Passage(number=i + 1, text=t)
                                                                  for i, t in enumerate(texts)))
    numpy_gen, torch_gen = SculptGenerator(runtime="numpy"), SculptGenerator(runtime="torch")
    a, b = numpy_gen.generate(request), torch_gen.generate(request)
    assert a.raw_text == b.raw_text and a.trace.nfe == b.trace.nfe
    assert numpy_gen.runtime == "numpy" and SculptGenerator().runtime == "numpy"  # the CPU default


def test_answering_on_a_cpu_never_imports_torch():
    code = ("import sys; from generator.sculpt import SculptGenerator; from pipeline.types import GenerationRequest, "
            "Passage; r = SculptGenerator().generate(GenerationRequest(question='Where do unit files live?', "
            f"passages=(Passage(number=1, text={TEXTS[1]!r}),))); print(r.raw_text); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    answer, imported = out.strip().rsplit("\n", 1)
    assert "/lib/systemd/system" in answer and imported == "False"


def test_runtime_option_is_checked():
    with pytest.raises(ConfigError, match="runtime must be"):
        SculptGenerator(runtime="jax")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError):
            SculptGenerator(runtime="numpy", device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("question,texts", QUESTIONS)
def test_on_cuda_the_torch_runtime_writes_the_cpu_answer(question, texts):
    request = GenerationRequest(question=question, passages=tuple(Passage(number=i + 1, text=t)
                                                                  for i, t in enumerate(texts)))
    gpu = SculptGenerator(device="cuda")
    assert gpu.runtime == "torch" and SculptGenerator(device="auto").runtime == "torch"
    assert gpu.generate(request).raw_text == SculptGenerator().generate(request).raw_text
