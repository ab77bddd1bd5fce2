"""Read the CDC mapping file (QCC_CDC_MAPPING, YAML or JSON) into a :class:`CdcMapping`; a file
that is missing or wrong is a :class:`ConfigurationError` naming the file and the rule, so the
worker ends with one line and exit 78 before it consumes anything."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from connector.domain.cdc_mapping import CdcMapping
from connector.errors import ConfigurationError

__all__ = ["load_cdc_mapping"]


def load_cdc_mapping(path: Path) -> CdcMapping:
    where = f"QCC_CDC_MAPPING={path}"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{where}: no such file (docs/cdc.md shows one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{where}: cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{where}: not YAML: {' '.join(str(exc).split())}") from None
    try:
        return CdcMapping.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False)[:5]:
            at = ".".join(str(part) for part in error["loc"]) or "the file"
            problems.append(f"{at}: {error['msg']}")
        raise ConfigurationError(f"{where}: {'; '.join(problems)} (docs/cdc.md explains the file)") from None
