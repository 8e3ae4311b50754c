"""The internal Streamlit app (`sculptrag app`): Ask, Documents, Evaluate and Settings pages.

Thin, like the CLI: it calls the public API (pipeline, evaluation) and renders. `main.py` is the
entry point Streamlit runs; `services.py` holds the heavy objects one process shares between sessions and
who the user is; `render.py` builds the HTML the pages show, escaping every piece of document text.
"""
