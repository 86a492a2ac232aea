"""``config/default.yaml`` generated from the schema, so the file can never drift from it.

Each value is the schema default; the ``#`` line above a key is its field description (a section
without one falls back to its class docstring). Regenerate after changing the schema:
``make config`` (or ``python -m taml.core.config_defaults > config/default.yaml``).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from typing import Any

from pydantic import BaseModel

from taml.core.config import Config

HEADER = """\
Every knob of the TAML pipeline, with its default. Profiles (local.yaml, gcp.yaml) and
overrides layer on top of this file:
  taml <command> --profile gcp --config my.yaml --set train.epochs=2
  TAML__TRAIN__EPOCHS=2 taml <command>
Unknown keys are errors. `taml config show` prints the effective configuration.
GENERATED from the schema (taml/core/config.py, model/spec.py) by `make config`: edit the
descriptions and defaults there, then regenerate; a hand edit here fails tests/taml/core/test_config.py."""

WIDTH = 100
# Set by the loader from the profile name, never by a file.
SKIPPED = frozenset({"profile"})
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UndocumentedKnob(ValueError):
    """A schema field has no description, so default.yaml could not say what it does."""


def render_defaults(schema: type[BaseModel] = Config) -> str:
    """The full text of default.yaml for ``schema`` (a top-level section per field)."""
    out = [_comment(HEADER, 0, wrap=False)]
    defaults = schema()
    dumped = defaults.model_dump(mode="json")
    for name, field in type(defaults).model_fields.items():
        if name in SKIPPED:
            continue
        out.append("")
        out.extend(_field(defaults, name, field, dumped[name], indent=0, where=name))
    return "\n".join(out) + "\n"


def _field(parent: BaseModel, name: str, field: Any, dumped: Any, indent: int, where: str) -> list[str]:
    value = getattr(parent, name)
    doc = field.description or (_docstring(value) if isinstance(value, BaseModel) else None)
    if not doc:
        raise UndocumentedKnob(f"{where}: the schema field has no description (default.yaml needs one)")
    pad = " " * indent
    lines = [_comment(doc, indent)]
    if isinstance(value, BaseModel):
        lines.append(f"{pad}{name}:")
        for sub, sub_field in type(value).model_fields.items():
            lines.extend(_field(value, sub, sub_field, dumped[sub], indent + 2, f"{where}.{sub}"))
    elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        # One flow mapping per item, only the keys that differ from the item's defaults (plus the
        # required ones): a feature list stays one readable line per field.
        lines.append(f"{pad}{name}:")
        lines.extend(f"{pad}  - {_flow(v.model_dump(mode='json', exclude_defaults=True))}" for v in value)
    elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        lines.append(f"{pad}{name}:")
        lines.extend(f"{pad}  {_key(k)}: {_flow(v)}" for k, v in dumped.items())
    else:
        lines.append(f"{pad}{name}: {_flow(dumped)}")
    return lines


def _flow(value: Any) -> str:
    # JSON is YAML flow syntax: strings quoted, null/true/false, floats as Python writes them.
    return json.dumps(value, ensure_ascii=False)


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key)


def _docstring(model: BaseModel) -> str | None:
    doc = type(model).__doc__
    return doc.strip().split("\n\n")[0] if doc else None


def _comment(text: str, indent: int, wrap: bool = True) -> str:
    prefix = " " * indent + "# "
    if not wrap:
        return "\n".join((prefix + line).rstrip() for line in text.splitlines())
    flat = " ".join(text.split())
    return "\n".join(
        textwrap.wrap(
            flat,
            WIDTH,
            initial_indent=prefix,
            subsequent_indent=prefix,
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def main() -> int:
    sys.stdout.write(render_defaults())
    return 0


if __name__ == "__main__":
    sys.exit(main())
