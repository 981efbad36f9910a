"""The Streamlit side of cxrfail: the only part of the package that imports streamlit. No analysis here.

One job per module:
- `settings`: the environment variables the dashboard reads (demo subset, config overrides, flip bootstrap).
- `datasets`: a cohort with its models (`Dataset`), the demo, what this session loaded.
- `state`: session-state keys and the sidebar's `Selection`.
- `sidebar`: `frame(title)`, the one call every page makes first: page config, navigation, the shared
  sidebar (cohort, models, finding, seed, analysis settings), the title; returns the `Selection`.
- `runs`: analysis runs shared by every session (`st.cache_resource`), figures, live flip evaluations and
  per-image explanations cached with Streamlit's own caches.
- `widgets`: small rendering helpers (plots, captions, tables, thumbnails, errors).
- `startup`: the server's start-up hook: preloads the analysis code and the demo while the first browser
  connects.

Pages (``overview.py`` is Overview, ``pages/*.py`` the rest: Streamlit's native multipage folder; ``app.py``
serves them, with `startup.lifespan`) read top to bottom:
``sel = frame(...)`` → ``result = runs.analysis(sel)`` → ``result.pair(model, finding)`` → figures.
"""
