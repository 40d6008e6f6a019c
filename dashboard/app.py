"""Influence Explorer dashboard: `streamlit run dashboard/app.py [-- --run DIR ...]`.

Reads a run directory (docs/run-directory.md) and shows it on the pages in dashboard/views/. Makes no request to
any host but its own: the page icon is a local file."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repository root
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException  # noqa: E402

from dashboard import pages, run_choice, url_state  # noqa: E402
from dashboard.run import open_run_or_stop  # noqa: E402

ICON = Path(__file__).resolve().parent / "static" / "icon.png"

st.set_page_config(page_title="Influence Explorer", page_icon=str(ICON), layout="wide")
navigation = st.navigation(pages.all_pages(), position="hidden")
url_state.begin_run(navigation.url_path)
try:
    page_list = st.sidebar.container()
    st.sidebar.divider()
    st.sidebar.caption("Influence Explorer")
    chosen = run_choice.pick_run()
    pages.sidebar_links(page_list)
    st.session_state["run_dir"] = chosen
    open_run_or_stop(chosen)  # a bad run shows its message here, on every page
    navigation.run()
except RerunException:  # a link was followed: the next page writes its own URL
    raise
except BaseException:  # st.stop() included: the URL still gets this run's state
    url_state.finish_run()
    raise
else:
    url_state.finish_run()  # one URL update per run, after the page
