"""One function per dashboard page; `dashboards/app.py` puts them under `st.navigation`."""
