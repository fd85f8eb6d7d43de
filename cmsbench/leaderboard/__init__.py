"""Leaderboards: statistics over per-case scores, publication tables and a static HTML site.

- :mod:`cmsbench.leaderboard.aggregate`: the one aggregation path (boards, CIs, Wilcoxon + Holm, ranks,
  significance groups); every output reads it.
- :mod:`cmsbench.leaderboard.tables`: Markdown, LaTeX (booktabs), CSV and text tables.
- :mod:`cmsbench.leaderboard.site`: the static HTML site (jinja2, autoescaped; matplotlib figures).
- :mod:`cmsbench.leaderboard.synthetic`: result records in the runner's format for tests and demos.
- :mod:`cmsbench.leaderboard.cli_commands`: ``cmsbench leaderboard`` and ``cmsbench table``.
"""
