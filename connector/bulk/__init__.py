"""Whole-collection tools built on Scroll: export, import, verify, re-embed backfill."""
