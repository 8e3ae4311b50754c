"""The app's entry point (`sculptrag app` runs `streamlit run` on this file)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.ui.common import context
from app.ui.render import CSS, e, md
from app.ui.services import ANONYMOUS

st.set_page_config(page_title="sculptrag", page_icon=":material/menu_book:", layout="wide")
st.html(CSS)

svc, user, prefs = context()
PAGES = Path(__file__).parent / "views"  # (not "pages": Streamlit would list that folder itself before navigation runs)
nav = st.navigation([
    st.Page(PAGES / "ask.py", title="Ask", icon=":material/forum:", default=True),
    st.Page(PAGES / "documents.py", title="Documents", icon=":material/description:"),
    st.Page(PAGES / "evaluate.py", title="Evaluate", icon=":material/monitoring:"),
    st.Page(PAGES / "settings.py", title="Settings", icon=":material/tune:"),
])

with st.sidebar:
    readable = len(svc.readable(prefs.groups))
    st.html(f'<div class="sr-meta"><b>{e(user.name)}</b><br>groups: {e(", ".join(prefs.groups) or "none")}'
            f'{"" if prefs.groups == user.groups else " (narrowed)"}<br>'
            f'generator: {e(prefs.generator)} · k = {prefs.k}<br>'
            f'{readable} document{"" if readable == 1 else "s"} you can read</div>')
    if user.name == ANONYMOUS and user.source != "settings":
        st.warning("Not signed in: this request did not come through the sign-in proxy, so there is nothing you may read.")
    if svc.warm_error:
        st.error(f"Loading the models failed: {md(svc.warm_error)}")
        svc.warm_up_again()  # the next page says whether that try did better

nav.run()
