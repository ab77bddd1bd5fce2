"""A dump checked against its manifest, whole, before anything is written from it or compared with it.

``import`` and ``verify`` read the dump once through :func:`check_dump` first: a line that is
not JSON, not a point, not in the manifest, there twice or not matching its digest, a gzip
stream that ends early, or fewer points than the manifest counts, is refused naming the file
and the first bad line (:class:`~connector.errors.InvalidInput`, exit 65). A dump cut short
(a copy interrupted, a disk that filled) would otherwise load its first part into a new
collection and fail only at the verification.

:func:`manifest_problem` and :func:`point_problem` are pure; :func:`check_dump` reads.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

from connector.bulk.dump import digest, id_key, manifest_path, open_dump
from connector.errors import InvalidInput

AGAIN = "export it again, or use a complete copy"
_NEEDED = ("count", "digests", "with_payload", "with_vectors")


def manifest_problem(manifest: Any) -> str | None:
    """What keeps ``manifest`` from being a dump's manifest, or None."""
    if not isinstance(manifest, dict):
        return f"a JSON object is expected, not {type(manifest).__name__}"
    missing = [key for key in _NEEDED if key not in manifest]
    if "config" not in manifest and "collection" not in manifest:
        missing.append("config")
    if missing:
        return f"{', '.join(missing)} missing"
    digests, count = manifest["digests"], manifest["count"]
    if not isinstance(digests, dict) or not all(isinstance(d, str) for d in digests.values()):
        return "digests is not an object of point digests"
    if not isinstance(count, int) or isinstance(count, bool) or count != len(digests):
        return f"count {count!r} is not the number of digests ({len(digests)})"
    return None


def point_problem(point: Any, digests: dict[str, str], seen: set[str]) -> str | None:
    """What is wrong with one dump line (parsed), or None; adds its id to ``seen``."""
    if not isinstance(point, dict) or not {"id", "payload", "vector"} <= point.keys():
        return "not a point (an object with id, payload and vector)"
    if not isinstance(point["payload"], dict) or not isinstance(point["vector"], dict):
        return "not a point (payload and vector are objects)"
    key = id_key(point["id"])
    if key in seen:
        return f"point {key} is there twice"
    seen.add(key)
    expected = digests.get(key)
    if expected is None:
        return f"point {key} is not in the manifest"
    try:
        actual = digest(point)
    except (TypeError, ValueError, KeyError, AttributeError):
        return f"point {key} has vectors that are not a dump's (a list of numbers, or indices and values)"
    if actual != expected:
        return f"point {key} does not match its digest in the manifest"
    return None


def read_manifest(dump: Path) -> dict[str, Any]:
    """The manifest beside ``dump``, checked to be one (FileNotFoundError when it is missing)."""
    path = manifest_path(dump)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not a dump manifest: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not a dump manifest: not JSON ({exc.msg} at line {exc.lineno})") from None
    problem = manifest_problem(manifest)
    if problem is not None:
        raise InvalidInput(f"{path} is not a dump manifest: {problem}")
    checked: dict[str, Any] = manifest
    return checked


def check_dump(dump: Path) -> dict[str, Any]:
    """Read the whole dump against its manifest; the manifest when every point is there and
    equal to its digest, else :class:`InvalidInput` naming the first bad line."""
    manifest = read_manifest(dump)
    digests: dict[str, str] = manifest["digests"]
    seen: set[str] = set()
    number = 0

    def damaged(problem: str) -> InvalidInput:
        return InvalidInput(f"{dump} is damaged or incomplete: {problem} ({AGAIN})")

    try:
        with open_dump(dump, "r") as handle:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    point = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise damaged(f"line {number} is not JSON ({exc.msg} at column {exc.colno})") from None
                problem = point_problem(point, digests, seen)
                if problem is not None:
                    raise damaged(f"line {number}: {problem}")
    except gzip.BadGzipFile:
        raise damaged("not gzip data (a name ending .gz is read as gzip)") from None
    except (EOFError, zlib.error) as exc:
        raise damaged(f"its gzip data breaks off after line {number} ({exc})") from None
    except UnicodeDecodeError:
        raise damaged(f"line {number + 1} is not UTF-8 text") from None
    if len(seen) != len(digests):
        raise damaged(f"it ends after line {number} with {len(seen)} of the manifest's {len(digests)} points")
    return manifest
