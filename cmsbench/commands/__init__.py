"""The sub-commands of ``cmsbench`` (the top layer with :mod:`cmsbench.cli`; no library module imports them)."""
