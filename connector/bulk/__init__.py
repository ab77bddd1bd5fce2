"""Whole-collection tools built on Scroll: export, import, verify, re-embed backfill, migrate.

Modules, each one command of the CLI: ``export``, ``importer``, ``verify``, ``reembed``,
``migrate``; with ``dump`` (the dump format), ``collection_config`` (copying a collection's
configuration) and ``scroll`` (progress and checkpoints)."""

__all__ = ["collection_config", "dump", "export", "importer", "migrate", "reembed", "scroll", "verify"]
