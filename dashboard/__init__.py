"""Influence Explorer dashboard: a Streamlit app over run directories (`streamlit run dashboard/app.py`)."""
