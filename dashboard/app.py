"""Influence Explorer dashboard: `streamlit run dashboard/app.py [-- --run DIR ...]`.

Reads a run directory (docs/run-directory.md) and shows it on the pages in dashboard/views/."""
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repository root
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import pages, run_choice  # noqa: E402
from dashboard.run import open_run_or_stop  # noqa: E402

st.set_page_config(page_title="Influence Explorer", page_icon=":material/insights:", layout="wide")
navigation = st.navigation(pages.all_pages())
st.sidebar.caption("Influence Explorer")
chosen = run_choice.pick_run()
st.session_state["run_dir"] = chosen
open_run_or_stop(chosen)  # a bad run shows its message here, on every page
navigation.run()
