"""Leaderboards: statistics over per-case scores, publication tables and a static HTML site.

- :mod:`cmsbench.leaderboard.aggregate`: the one aggregation path (boards, CIs, Wilcoxon + Holm, ranks,
  significance groups); every output reads it.
- :mod:`cmsbench.leaderboard.tables`: Markdown, LaTeX (booktabs), CSV and text tables.
- :mod:`cmsbench.leaderboard.site`: the static HTML site (jinja2, autoescaped; matplotlib figures).

Records are read through :mod:`cmsbench.results`; synthetic records for tests and demos are in
:mod:`cmsbench.testing.synthetic`; the commands in :mod:`cmsbench.commands.leaderboard`.
"""
