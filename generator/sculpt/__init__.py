"""sculpt, the bundled answer model: a copy-aware masked-diffusion denoiser over retrieved passages.

Runtime (what answering needs; none of it imports training):
- features.py: requests -> a padded Batch of encoder inputs and per-token features (copy positions, sentence ids)
- space.py: OutputSpace, the ids one answer slot can hold ([words | copy positions | citations]) and MASK
- model.py: SculptConfig and SculptModel (MiniLM encoder, diffusion decoder, pointer and selector heads)
- checkpoint.py: the base encoder from its package, checkpoint folders, the bundled one (weights/)
- grammar.py: the answer grammar and the choice of a slot's value under it
- generator.py: SculptGenerator (the Generator protocol, samplers, rendering), SculptSampling, build_sculpt
Training (training/, imports the runtime, never the reverse): data.py and qgen.py build the examples,
targets.py turns gold answers into output-space slots, train.py runs `sculptrag train-generator`.
"""

from .checkpoint import BUNDLED, build_model, bundled_checkpoint, load_checkpoint, save_checkpoint
from .features import Batch, featurize
from .generator import SculptGenerator, SculptSampling, build_sculpt, render
from .model import SculptConfig, SculptModel
from .space import MASK, OutputSpace

__all__ = [
    "BUNDLED", "MASK", "Batch", "OutputSpace", "SculptConfig", "SculptGenerator", "SculptModel", "SculptSampling",
    "build_model", "build_sculpt", "bundled_checkpoint", "featurize", "load_checkpoint", "render", "save_checkpoint",
]
