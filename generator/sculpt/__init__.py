"""sculpt, the bundled answer model: a copy-aware masked-diffusion denoiser over retrieved passages.

Runtime (what answering needs; none of it imports training):
- features.py: requests -> a padded Batch of encoder inputs and per-token features (copy positions, sentence ids)
- space.py: OutputSpace, the ids one answer slot can hold ([words | copy positions | citations]) and MASK
- config.py: SculptConfig, the model's sizes
- model.py: SculptModel in torch (MiniLM encoder, diffusion decoder, pointer and selector heads; bert.py),
  what training and a GPU run
- runtime.py: the same model's inference in numpy, what a CPU answer runs (no torch import); load_runtime
- checkpoint.py: the base encoder from its package, checkpoint folders, the bundled one (weights/)
- grammar.py: the answer grammar and the choice of a slot's value under it
- generator.py: SculptGenerator (the Generator protocol, samplers, rendering), SculptSampling, build_sculpt
Training (training/, imports the runtime, never the reverse): data.py and qgen.py build the examples,
targets.py turns gold answers into output-space slots, train.py runs `sculptrag train-generator`, selector.py
`sculptrag train-selector` (the sentence selector's heads alone, on frozen features).
"""

from .checkpoint import BUNDLED, build_model, bundled_checkpoint, load_checkpoint, save_checkpoint
from .config import SculptConfig
from .features import Batch, featurize
from .generator import SculptGenerator, SculptSampling, build_sculpt, render
from .runtime import load_runtime
from .space import MASK, OutputSpace


def __getattr__(name: str):
    if name == "SculptModel":  # (torch: imported when asked for, not by answering on a CPU)
        from .model import SculptModel

        return SculptModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUNDLED", "MASK", "Batch", "OutputSpace", "SculptConfig", "SculptGenerator", "SculptModel", "SculptSampling",
    "build_model", "build_sculpt", "bundled_checkpoint", "featurize", "load_checkpoint", "load_runtime", "render",
    "save_checkpoint",
]
