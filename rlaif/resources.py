"""Find built-in resources (judge specs, prompt templates) in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# In a wheel, pyproject's force-include puts judges/ and prompts/ under rlaif/_builtin/.
# In a checkout (editable install, or running from the repo) they sit at the repo top level.
_CANDIDATE_ROOTS = (_PACKAGE_DIR / "_builtin", _PACKAGE_DIR.parent)

KINDS = {"judges": (".yaml", ".yml"), "prompts": (".yaml", ".yml")}


def builtin_dir(kind: str) -> Path:
    """The folder holding the built-in `kind` ("judges" or "prompts")."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {sorted(KINDS)}")
    for root in _CANDIDATE_ROOTS:
        if (root / kind).is_dir():
            return root / kind
    raise FileNotFoundError(
        f"built-in {kind}/ folder not found under {[str(r) for r in _CANDIDATE_ROOTS]}; "
        "the rlaif install looks broken: reinstall it (pip install -e . from a checkout)"
    )


def builtin_names(kind: str) -> list[str]:
    """Names (file stems) of the built-in resources of `kind`, sorted."""
    suffixes = KINDS[kind]
    return sorted(p.stem for p in builtin_dir(kind).iterdir() if p.suffix in suffixes)


def looks_like_path(ref: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> bool:
    """A reference with a folder part, a leading ~ or ., or a file suffix is a path, not a name."""
    return "/" in ref or "\\" in ref or ref.startswith(("~", ".")) or ref.endswith(suffixes)


def resolve(kind: str, ref: str | Path, base: Path | None = None) -> Path:
    """Resolve `ref` to a file: an existing path (absolute, or relative to `base` or the
    working directory), else a built-in by its bare name such as `roberta-hate`. A reference
    that looks like a path (`looks_like_path`) and does not exist is an error, never a built-in."""
    suffixes = KINDS[kind]
    ref_path = Path(ref).expanduser()
    candidates = [ref_path]
    if base is not None and not ref_path.is_absolute():
        candidates.insert(0, base / ref_path)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    if looks_like_path(str(ref), suffixes):
        # A mistyped path must not quietly become the built-in of the same name.
        raise FileNotFoundError(
            f"{kind[:-1]} file {str(ref)!r} does not exist"
            + (f" (nor relative to {base})" if base is not None and not ref_path.is_absolute() else "")
            + f"; fix the path, or use a built-in by its bare name: "
            f"{', '.join(builtin_names(kind)) or '(none)'}"
        )
    name = ref_path.name
    for suffix in ("", *suffixes):
        p = builtin_dir(kind) / f"{name}{suffix}"
        if p.is_file() and p.suffix in suffixes:
            return p
    raise FileNotFoundError(
        f"no {kind[:-1]} named {str(ref)!r}: not a file, and not a built-in. "
        f"Built-in {kind}: {', '.join(builtin_names(kind)) or '(none)'}. "
        f"Pass a path to a YAML file or one of those names."
    )
