"""Helpers for tests (cmsbench's own and plugin authors'): tiny datasets in official layouts, fake tasks."""
