"""Settings: the generator and its options (a form made from its plugin's options model), self-correction,
retrieval k and document filters, and the groups in use.

They hold for this browser session and take effect on the next question. Groups can only be narrowed to a
subset of what the user has (from the settings, or from the proxy's header)."""

from __future__ import annotations

import streamlit as st

from app.ui.common import context
from app.ui.render import md
from app.ui.services import FormField, Prefs, form_fields, plugin_spec
from generator.base import available_generators

svc, user, prefs = context()
st.title("Settings")
st.caption("These hold for your session and apply to your next question.")


def option_widget(field: FormField, value, key: str):
    """The widget for one options-model field (number input with the field's bounds, checkbox, select, text
    input); returns what it holds."""
    kw = dict(key=key, help=field.help)
    if field.kind == "bool":
        return st.checkbox(field.label, value=bool(value), **kw)
    if field.kind == "choice":
        choices = [None, *field.choices] if field.optional else list(field.choices)
        return st.selectbox(field.label, choices, index=choices.index(value) if value in choices else 0,
                            format_func=lambda c: "none" if c is None else str(c), **kw)
    if field.kind in ("int", "float"):
        cast = int if field.kind == "int" else float
        low, high = (None if b is None else cast(b) for b in (field.min, field.max))
        if value is not None:
            value = cast(value)
        if value is None and not field.optional:
            value = low if low is not None else cast(0)
        return st.number_input(field.label, min_value=low, max_value=high, value=value,
                               placeholder="none" if field.optional else None, **kw)
    text = st.text_input(field.label, value="" if value is None else str(value), **kw).strip()
    return None if field.optional and not text else text


names = svc.generators() if svc.remote else available_generators()
if prefs.generator not in names:
    names = [prefs.generator, *names]
left, right = st.columns(2)
with left:
    st.subheader("Generator")
    prefs.generator = st.selectbox(
        "Generator", names, index=names.index(prefs.generator), key="set_generator",
        help="Any registered generator (the bundled ones and plugins of the entry-point group "
             "sculptrag.generators); the options below are the ones its plugin declares.")
    name = prefs.generator
    spec = plugin_spec(name)
    opts = prefs.options.setdefault(name, {})
    traits = [t for t, on in (("masked diffusion", spec and spec.diffusion),
                              ("needs a local model folder", spec and spec.needs_model_path)) if on]
    if traits:
        st.caption(" · ".join(traits))
    if spec is not None and spec.needs_model_path:
        configured = svc.settings.generator_options.get(name, {}).get("model_path")
        prefs.model_paths[name] = st.text_input(
            "Model folder (on the server)", value=prefs.model_paths.get(name, ""), key=f"set_path_{name}",
            placeholder=f"{configured} (set up for this server)" if configured else "",
            help="empty: the folder the server's settings give (SCULPTRAG_GENERATOR_OPTIONS)" if configured else None,
        ).strip()
    defaults = spec.defaults(svc.settings) if spec is not None else None
    if defaults is not None:  # the form comes from the plugin's options model; only changed values are sent
        with st.expander("Options", expanded=True):
            for field in form_fields(spec.options, skip=spec.load_options):
                default = getattr(defaults, field.name)
                value = option_widget(field, opts.get(field.name, default), f"set_{name}_{field.name}")
                if value == default:
                    opts.pop(field.name, None)
                else:
                    opts[field.name] = value
            try:
                spec.options(**{**defaults.model_dump(), **opts})
            except ValueError as exc:  # pydantic's ValidationError: say which options do not go together
                problems = exc.errors() if hasattr(exc, "errors") else [{"loc": (), "msg": str(exc)}]
                st.error("These options are not valid together: " + "; ".join(
                    f"{'.'.join(map(str, err['loc'])) or 'options'}: {err['msg']}" for err in problems))
    elif spec is not None:
        st.caption("This generator's plugin declares no options.")
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
