"""The metadata file `rlaif label` writes beside a label file (`<labels>.meta.json`: the judge,
its spec fingerprint, calls, cost) and `rlaif dpo` reads to say what labelled its pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

META_SUFFIX = ".meta.json"


def label_meta_path(labels: str | Path) -> Path:
    """`<labels>.meta.json` beside the label file."""
    labels = Path(labels)
    return labels.with_name(labels.name + META_SUFFIX)


def read_label_meta(labels: str | Path) -> dict[str, Any] | None:
    """The metadata of a label file, or None when it has none."""
    path = label_meta_path(labels)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); rerun `rlaif label` to write it again, "
                         "or delete it (the labels then carry no judge record)") from None
