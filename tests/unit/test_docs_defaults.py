"""The defaults the docs quote are the settings' defaults: README's settings table, and in the
prose of README.md and docs/*.md every setting quoted with its default in one of the forms
``QCC_X`` (default N), ``QCC_X`` (N by default), ``QCC_X``, N s by default (a unit: s, ms, MiB,
KiB, or a word such as characters)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from connector.settings import ChunkedField, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

NUMBER = r"\d[\d,]*(?:\.\d+)?"
UNITS = {"ms": 0.001, "s": 1.0, "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3}
VALUE = rf"(?:{NUMBER}(?: (?:[A-Za-z]+))?|`[^`]+`)"
SCOPE = r"[^`.;]{0,60}?"  # the rest of the clause: no other code word, no sentence's end
QUOTE = re.compile(rf"`QCC_([A-Z0-9_]+)`{SCOPE}(?:\bdefault:? (?P<after>{VALUE})|(?P<before>{VALUE}) by default)")
MENTION = re.compile(rf"`QCC_([A-Z0-9_]+)`{SCOPE}\bdefault\b")


def fields() -> dict[str, Any]:
    return {name.upper(): info.get_default(call_default_factory=True) for name, info in Settings.model_fields.items()}


def quoted_defaults(text: str) -> list[tuple[str, str]]:
    """(setting, the default as quoted) for each quote in ``text``; the settings' names only."""
    flat = " ".join(text.split())  # a quote may wrap across lines
    known = fields()
    return [(m.group(1), m.group("after") or m.group("before")) for m in QUOTE.finditer(flat) if m.group(1) in known]


def unreadable_quotes(text: str) -> list[str]:
    """A setting followed by "default" in a form the check cannot read: write it in one that it can."""
    flat = " ".join(text.split())
    return [m.group(0) for m in MENTION.finditer(flat) if m.group(1) in fields() and not QUOTE.match(flat, m.start())]


def equal(quoted: str, default: Any) -> bool:
    if quoted.startswith("`"):
        return quoted.strip("`") == str(default)
    number, _, unit = quoted.partition(" ")
    value = float(number.replace(",", "")) * UNITS.get(unit, 1.0)
    return isinstance(default, (int, float)) and abs(value - float(default)) <= 1e-9 * max(1.0, abs(value))


def wrong_defaults(text: str) -> list[str]:
    known = fields()
    return [f"QCC_{name}: {quoted}, but the default is {known[name]!r}" for name, quoted in quoted_defaults(text)
            if not equal(quoted, known[name])]


def test_the_defaults_quoted_in_the_docs_are_the_settings() -> None:
    found = {path.name: wrong_defaults(path.read_text()) for path in DOCS}
    assert {name: wrong for name, wrong in found.items() if wrong} == {}


def test_every_default_quoted_beside_a_setting_is_in_a_form_the_check_reads() -> None:
    found = {path.name: unreadable_quotes(path.read_text()) for path in DOCS}
    assert {name: quotes for name, quotes in found.items() if quotes} == {}


def test_the_check_reads_the_quotes_in_the_docs() -> None:
    quoted = {name for path in DOCS for name, _ in quoted_defaults(path.read_text())}
    assert quoted >= {"WINDOWS_IN_FLIGHT", "FILTER_BLAST_RADIUS", "FILTER_MAX_SHARE", "QDRANT_MAX_REQUEST_BYTES",
                      "SESSION_TIMEOUT_SECONDS", "VERIFY_FILTER_MAX_POINTS", "CDC_MAX_TEXT_CHARS",
                      "CONSUMER_MAX_FETCH_BYTES", "QDRANT_TIMEOUT_SECONDS"}


def test_the_check_finds_a_default_the_prose_gets_wrong() -> None:
    text = ("`QCC_WINDOWS_IN_FLIGHT` (default 3) bounds them; `QCC_QDRANT_MAX_REQUEST_BYTES`,\n16 MiB by default; "
            "`QCC_SESSION_TIMEOUT_SECONDS`, 6 s in these runs, 12 s by default. `QCC_LOG_LEVEL` (default `debug`); "
            "`QCC_FILTER_MAX_SHARE`, which by default is half")
    assert wrong_defaults(text) == ["QCC_WINDOWS_IN_FLIGHT: 3, but the default is 2",
                                    "QCC_SESSION_TIMEOUT_SECONDS: 12 s, but the default is 10.0",
                                    "QCC_LOG_LEVEL: `debug`, but the default is 'info'"]
    assert unreadable_quotes(text) == ["`QCC_FILTER_MAX_SHARE`, which by default"]


def readme_table() -> dict[str, str]:
    return dict(re.findall(r"^\| `QCC_([A-Z0-9_]+)` \| `([^`]*)` \|", (ROOT / "README.md").read_text(), re.MULTILINE))


def test_the_readme_table_gives_each_setting_its_default() -> None:
    table = readme_table()
    shown = {name: "unset" if default is None or default == {} else str(default) for name, default in fields().items()}
    wrong = {name: (table.get(name), default) for name, default in shown.items()
             if table.get(name) != default and not (table.get(name) == "unset" and default in ("[]", "{}"))}
    assert wrong == {}


# a chunked collection's own settings (ChunkedField), quoted as `max_tokens` (128) or `max_tokens` 128
CHUNK_QUOTE = re.compile(r"`(max_tokens|overlap_tokens)`[ (]{1,2}(\d+)\)?")


def wrong_chunk_defaults(text: str) -> list[str]:
    defaults = ChunkedField(text_field="body").model_dump()
    return [f"{m.group(0)}, but the default is {defaults[m.group(1)]}" for m in CHUNK_QUOTE.finditer(text)
            if int(m.group(2)) != defaults[m.group(1)]]


def test_the_chunk_sizes_quoted_in_the_docs_are_the_defaults() -> None:
    quoted = [m for doc in DOCS for m in CHUNK_QUOTE.finditer(doc.read_text(encoding="utf-8"))]
    assert len(quoted) >= 4, "README's settings table and design.md quote both chunk sizes"
    assert {doc.name: wrong_chunk_defaults(doc.read_text(encoding="utf-8")) for doc in DOCS} == {
        doc.name: [] for doc in DOCS}
    assert wrong_chunk_defaults("(also `max_tokens` 256, `overlap_tokens` 16)") == [
        "`max_tokens` 256, but the default is 128"]
