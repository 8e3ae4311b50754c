"""Settings: the generator and its sampling settings, self-correction, retrieval k and document filters, and the
groups in use.

They hold for this browser session and take effect on the next question. Groups can only be narrowed to a
subset of what the user has (from the settings, or from the proxy's header)."""

from __future__ import annotations

import streamlit as st

from app.ui.common import context
from app.ui.render import md
from app.ui.services import DIFFUSION, NEEDS_MODEL_PATH, Prefs
from generator.base import available_generators
from generator.sculpt import SculptSampling

svc, user, prefs = context()
st.title("Settings")
st.caption("These hold for your session and apply to your next question.")

names = available_generators()
if prefs.generator not in names:
    names = [prefs.generator, *names]
left, right = st.columns(2)
with left:
    st.subheader("Generator")
    prefs.generator = st.selectbox(
        "Generator", names, index=names.index(prefs.generator), key="set_generator",
        help="sculpt: the bundled masked-diffusion model (default). extractive: picks passage sentences. "
             "smollm2: the autoregressive baseline. llada / dream / hf-mlm / hf-causal: a local model folder.")
    name = prefs.generator
    opts = prefs.options.setdefault(name, {})
    if name in NEEDS_MODEL_PATH:
        prefs.model_paths[name] = st.text_input("Model folder (on the server)", value=prefs.model_paths.get(name, ""),
                                                key=f"set_path_{name}").strip()
    if name == "sculpt":
        opts["sampler"] = st.radio("Sampler", ["fast", "naive"], index=["fast", "naive"].index(opts.get("sampler", "fast")),
                                   horizontal=True, key="set_sculpt_sampler",
                                   help="fast: a quoted span is drafted and checked in one model call; naive: one "
                                        "position per step, the encoder rerun each step. Both write the same answer.")
        opts["draft_length"] = st.slider("Block length (positions drafted per model call)", 1, 64,
                                         opts.get("draft_length", 16), key="set_sculpt_draft")
        steps = st.number_input("Max steps (0: until the answer ends)", 0, 512, opts.get("max_steps") or 0, key="set_sculpt_steps")
        opts["max_steps"] = int(steps) or None
        defaults = SculptSampling()
        opts["selector"] = st.radio(
            "What decides the quotes", ["relevance", "learned"],
            index=["relevance", "learned"].index(opts.get("selector", defaults.selector)), horizontal=True,
            key="set_sculpt_selector", help="relevance: each sentence's similarity to the question, its question "
            "words and the asked kind of value (the default); learned: the model's own sentence selector alone")
        if opts["selector"] == "relevance":
            opts["answer_threshold"] = st.slider(
                "Answer when the best sentence's relevance reaches (else refuse)", 0.0, 3.0,
                float(opts.get("answer_threshold", defaults.answer_threshold)), 0.05, key="set_sculpt_answer")
            opts["more_margin"] = st.slider("Quote another sentence while it is this close to the best", 0.0, 1.0,
                                            float(opts.get("more_margin", defaults.more_margin)), 0.05,
                                            key="set_sculpt_margin")
            opts["clauses"] = st.toggle("Quote from the clause that answers, not always the whole sentence",
                                        value=opts.get("clauses", defaults.clauses), key="set_sculpt_clauses")
        else:
            opts["refuse_threshold"] = st.slider("Refuse when P(no sentence answers) reaches", 0.05, 1.0,
                                                 float(opts.get("refuse_threshold", defaults.refuse_threshold)), 0.05,
                                                 key="set_sculpt_refuse")
            opts["more_threshold"] = st.slider("Quote another sentence while its probability is at least", 0.0, 1.0,
                                               float(opts.get("more_threshold", defaults.more_threshold)), 0.05,
                                               key="set_sculpt_more")
    elif name in DIFFUSION:
        opts["gen_length"] = st.select_slider("Answer length (positions)", [32, 64, 128, 256], opts.get("gen_length", 128),
                                              key=f"set_{name}_len")
        blocks = [b for b in (8, 16, 32, 64, 128, 256) if opts["gen_length"] % b == 0 and b <= opts["gen_length"]]
        block = opts.get("block_length", 32)
        opts["block_length"] = st.select_slider("Block length", blocks, block if block in blocks else blocks[-1],
                                                key=f"set_{name}_block")
        opts["steps"] = st.slider("Steps", 1, 256, opts.get("steps", 64), key=f"set_{name}_steps")
        thr = st.slider("Parallel decoding threshold (0: a fixed number of tokens per step)", 0.0, 1.0,
                        float(opts.get("threshold") or 0.0), 0.05, key=f"set_{name}_thr")
        opts["threshold"] = thr or None
        if st.toggle("Self-correction while denoising (remask tokens whose confidence drops)",
                     value=opts.get("remask_threshold") is not None, key=f"set_{name}_remask_on"):
            opts["remask_threshold"] = st.slider("Remask below", 0.01, 0.99, float(opts.get("remask_threshold") or 0.1),
                                                 0.01, key=f"set_{name}_remask")
        else:
            opts["remask_threshold"] = None
    elif name in ("smollm2", "hf-causal"):
        opts["max_new_tokens"] = st.slider("Max new tokens", 16, 512, opts.get("max_new_tokens", 128), key=f"set_{name}_max")
    prefs.repair_rounds = int(st.number_input(
        "Self-correction after validation (repair rounds)", 0, 3, prefs.repair_rounds, key="set_repair",
        help="When a sentence fails validation, a diffusion generator remasks just that sentence and denoises it "
             "again; other generators answer again without the passages only failing sentences cite. 0: off."))

with right:
    st.subheader("Retrieval")
    prefs.k = st.slider("Passages retrieved (k)", 1, 20, prefs.k, key="set_k")
    readable = svc.readable(prefs.groups)  # only what this user may read names a choice
    stated = [(entity, period) for doc_id, entity, period in svc.store.document_metadata() if doc_id in readable]
    for i, (field_name, label) in enumerate((("entity", "Only documents of (company, parties, sender)"),
                                             ("period", "Only documents for the period"))):
        values = sorted({row[i] for row in stated if row[i]})
        if values:
            kept = [v for v in prefs.filters.get(field_name, []) if v in values]
            prefs.filters[field_name] = st.multiselect(label, values, default=kept, key=f"set_filter_{field_name}",
                                                       help="As the documents state it on their first page; empty: all.")
        else:
            prefs.filters.pop(field_name, None)
    st.subheader("Your groups")
    where = "your settings" if user.source == "settings" else f"the {md(user.source)} header from your sign-in proxy"
    st.caption(f"You may read documents of these groups (from {where}). Narrow them to search less.")
    chosen = st.multiselect("Groups in use", list(user.groups), default=list(prefs.groups), key="set_groups")
    if chosen:
        prefs.groups = tuple(chosen)
    elif user.groups:
        st.warning("Keep at least one group; using all of yours.")
        prefs.groups = user.groups
    st.caption("May ingest and delete documents: " + ("yes" if user.editor else "no"))

if st.button("Reset to defaults", key="set_reset"):
    st.session_state["prefs"] = Prefs.defaults(svc.settings, user)
    for key in [k for k in st.session_state if str(k).startswith("set_")]:
        del st.session_state[key]
    st.rerun()
