"""Whole-collection tools built on Scroll: export, import, verify, re-embed backfill, migrate.

Modules, each one command of the CLI: ``export``, ``importer``, ``verify``, ``reembed``,
``migrate``; with ``dump`` (the dump format), ``dump_check`` (a dump against its manifest,
before it is used), ``collection_config`` (copying a collection's configuration),
``collection_spec`` (a new collection's name and vectors as the server takes them),
``filter_option`` (``--filter``), ``selection`` (options checked against the collection),
``error_line`` (a validation error as one line) and ``scroll`` (progress and checkpoints)."""

__all__ = ["collection_config", "collection_spec", "dump", "dump_check", "error_line", "export", "filter_option",
           "importer", "migrate", "reembed", "scroll", "selection", "verify"]
