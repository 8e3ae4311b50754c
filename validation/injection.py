"""Prompt-injection scan: passages whose text tries to instruct the model rather than inform it.

Retrieved passages are data, but a document can carry text aimed at the model reading it ("ignore the
previous instructions", "do not cite", "<script>"). Such a passage is flagged, not removed: the report
tells the reader (and an operator) that the answer was made from sources that contain instructions, and
the verdict becomes at least "warn". All patterns live in one table, `PATTERNS`, each with a name that the
report quotes; they are deliberately specific (e.g. "reveal your system prompt", not "reveal"), since an
enterprise corpus is full of harmless "revealed" and "you are now ready to install".
"""

from __future__ import annotations

import re
from typing import Iterable

from .report import InjectionFlag

_IGNORE = r"(?:ignore|disregard|forget|override|skip)"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|foregoing|original|system)"
PATTERNS: dict[str, re.Pattern] = {
    name: re.compile(rx, re.IGNORECASE | re.MULTILINE)
    for name, rx in {
        "ignore_previous": rf"\b{_IGNORE}\s+(?:all\s+|any\s+|everything\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
                           rf"{_PRIOR}\s+(?:instructions?|prompts?|directions?|rules|context|messages?)",
        "disregard_above": rf"\b{_IGNORE}\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+|what\s+is\s+)?"
                           r"(?:above|said\s+above|written\s+above)",
        "role_override": r"\byou\s+are\s+now\s+(?:a|an|DAN|free|unrestricted|jailbroken|allowed|in\s+\w+\s+mode)\b|"
                         r"\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited|an?\s+(?:AI|assistant))\b|"
                         r"\bfrom\s+now\s+on,?\s+you\s+(?:are|will|must)\b|"
                         r"\bact\s+as\s+(?:a|an)\s+(?:unrestricted|unfiltered|jailbroken)",
        "system_prompt": r"\b(?:system|developer|hidden)\s+(?:prompt|message|instructions)\b",
        "new_instructions": r"\b(?:new|updated|additional|real|actual)\s+instructions?\s*:|"
                            r"^\s*(?:#{2,}\s*)?(?:instruction|system|assistant)\s*:",
        "no_citation": r"\b(?:do\s+not|don'?t|never)\s+(?:cite|mention|reference|quote)\s+(?:this|the|any|your|"
                       r"these|sources?|passages?)\b",
        "respond_only": r"\b(?:respond|reply|answer|output)\s+only\s+with\b|\b(?:respond|reply|answer)\s+with\s+"
                        r"exactly\b",
        "reveal_secret": r"\b(?:reveal|print|show|repeat|leak|output)\s+(?:your|the)\s+(?:system\s+prompt|"
                         r"instructions|prompt|secrets?|password|api\s+keys?|credentials|hidden)",
        "script_tag": r"<\s*script\b|javascript\s*:",
        "exfiltrate_link": r"!\[[^\]]*\]\(\s*https?://[^)]*[?&][^)]*=",
    }.items()
}


def scan_passage(number: int, text: str, *, cited: bool = False, context: int = 40) -> list[InjectionFlag]:
    """One flag per pattern that matches `text` (the first match, with `context` chars either side)."""
    flags = []
    for name, rx in PATTERNS.items():
        m = rx.search(text)
        if m:
            start, end = max(0, m.start() - context), min(len(text), m.end() + context)
            excerpt = " ".join(text[start:end].split())
            flags.append(InjectionFlag(passage=number, pattern=name, excerpt=excerpt, cited=cited))
    return flags


def scan(passages: Iterable[tuple[int, str]], cited: Iterable[int] = ()) -> list[InjectionFlag]:
    """Flags for all passages, in passage order; `cited` marks those the answer cites."""
    cited = set(cited)
    return [f for number, text in passages for f in scan_passage(number, text, cited=number in cited)]
