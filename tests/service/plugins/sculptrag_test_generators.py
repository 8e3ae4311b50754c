"""Two third-party generators for the service tests, registered the way any plugin is: through the
"sculptrag.generators" entry point (the fixture puts a dist-info naming them on the server's path).

- `broken`: its weights cannot be loaded (warm_up raises), as a generator whose model folder is missing.
- `slow`: a generator that takes its time: one denoising state every `step_s` seconds for `steps` steps,
  then the best-matching passage sentence, cited. It holds the generator queue long enough to see what a
  full queue and a client that goes away do.
"""

from __future__ import annotations

import time
from typing import Iterator

from pipeline.types import Citation, DenoiseState, GenerationRequest, GenerationResult, GenerationTrace


class BrokenGenerator:
    name = "broken"

    def warm_up(self) -> None:
        raise RuntimeError("no weights at /models/broken (the folder is empty)")

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise RuntimeError("not loaded")

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        raise RuntimeError("not loaded")


class SlowGenerator:
    name = "slow"

    def __init__(self, steps: int = 40, step_s: float = 0.1) -> None:
        self.steps, self.step_s = steps, step_s

    def warm_up(self) -> None:
        pass

    def generate(self, request: GenerationRequest) -> GenerationResult:
        result = None
        for item in self.stream(request):
            result = item
        return result

    def stream(self, request: GenerationRequest) -> Iterator[DenoiseState | GenerationResult]:
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            yield DenoiseState(step=step, text="\u2591" * (self.steps - step), masked=self.steps - step)
        first = request.passages[0] if request.passages else None
        text = f"{first.text.split('.')[0]}. [1]" if first else "The passages do not contain the answer."
        citations = [Citation(marker=1, passage_number=first.number)] if first else []
        yield GenerationResult(text=text, raw_text=text, citations=citations,
                               trace=GenerationTrace(generator=self.name, steps=self.steps))


def build_broken(**options) -> BrokenGenerator:
    return BrokenGenerator()


def build_slow(**options) -> SlowGenerator:
    return SlowGenerator(**options)
