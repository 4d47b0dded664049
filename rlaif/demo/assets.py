"""The demo's offline models, built once and cached.

`build_real_assets` (the default `rlaif demo`): SmolLM2-135M-Instruct from its installed GGUF
with rudeness fine-tuned in (LoRA) on real red-team openings (`rude.py`), the evaluator
(all-MiniLM-L6-v2 + a head on the Davidson tweets, `evaluator.py`) and the helpfulness judge
(MiniLM + a head on real hh-rlhf openings, `helpfulness.py`).

`build_toy_assets` (`rlaif demo --toy`, tests): a small GPT-2 trained from scratch on the
sample's TRAIN dialogues (chosen and rejected, so sampling gives a mix of polite and toxic
replies) and a small RoBERTa classifier trained on the sample's TRAIN replies (`training.py`).

Each lives under `$RLAIF_CACHE/demo-v<ASSET_VERSION>/{policy,evaluator}-<key>/` (default
root `~/.cache/rlaif`), where `key` hashes the sample files and that model's builder
settings: a changed sample or setting rebuilds that model; otherwise the second call is a
cache hit. A build is written to a temporary folder and renamed into place, so an
interrupted build never leaves a half-written cache behind.

The settings live in `rlaif.demo.settings`, the training in `rlaif.demo.training`; this
module keys, caches and orchestrates them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlaif.demo.settings import AssetSettings, RealAssetSettings
from rlaif.demo.training import build_policy, build_toy_evaluator, lm_texts, reply_labels
from rlaif.io import atomic_write_dir

logger = logging.getLogger(__name__)

# Bump when the builders change in a way that changes the models they produce.
ASSET_VERSION = "2"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DemoAssets:
    """Where the built models are, whether they came from the cache, and their build stats."""

    root: Path
    policy: Path
    evaluator: Path
    key: str
    cache_hit: bool
    manifest: dict[str, Any]
    toy: bool = False  # the small from-scratch models (`rlaif demo --toy`)
    helpfulness: Path | None = None  # the real demo's hold-out helpfulness judge (its folder)


def cache_root() -> Path:
    """`$RLAIF_CACHE` if set, else `~/.cache/rlaif`."""
    env = os.environ.get("RLAIF_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlaif"


def sample_files() -> list[Path]:
    """The bundled sample's train and test files (both are hashed into the cache key)."""
    from rlaif.data.hh import sample_path

    return [sample_path("train"), sample_path("test")]


def asset_key(settings: BaseModel, files: list[Path] | None = None) -> str:
    """Hash of the sample files' bytes and the builder settings: the cache key."""
    h = hashlib.sha256()
    h.update(f"rlaif-demo-assets-v{ASSET_VERSION}:{type(settings).__name__}".encode())
    h.update(json.dumps(settings.model_dump(mode="json"), sort_keys=True).encode())
    for path in files if files is not None else sample_files():
        if not path.is_file():
            raise FileNotFoundError(
                f"bundled HH sample {path} is missing; reinstall rlaif or regenerate it with "
                "`python scripts/make_hh_sample.py`"
            )
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_toy_assets(settings: AssetSettings | None = None, cache_dir: str | Path | None = None,
                      force: bool = False) -> DemoAssets:
    """Return the demo policy and evaluator, building and caching each when missing or stale."""
    settings = settings or AssetSettings()
    root = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / f"demo-v{ASSET_VERSION}"
    rows: dict[str, list[Any]] = {}

    def sample_rows() -> dict[str, list[Any]]:
        if not rows:
            rows["train"], rows["test"] = _load_sample_rows()
        return rows

    policy_dir, policy_stats, policy_hit = _cached(
        root, "policy", settings.policy, force,
        lambda out: build_policy(out, lm_texts(sample_rows()["train"]), settings.policy))
    evaluator_dir, evaluator_stats, evaluator_hit = _cached(
        root, "evaluator", settings.evaluator, force,
        lambda out: build_toy_evaluator(out, reply_labels(sample_rows()["train"]),
                                    reply_labels(sample_rows()["test"]), settings.evaluator))
    manifest = {"asset_version": ASSET_VERSION, "policy": policy_stats,
                "evaluator": evaluator_stats}
    key = f"{policy_dir.name}+{evaluator_dir.name}"
    return DemoAssets(root, policy_dir / "model", evaluator_dir / "model", key,
                      policy_hit and evaluator_hit, manifest, toy=True)


def _cached(root: Path, kind: str, settings: BaseModel, force: bool,
            build: Callable[[Path], dict[str, Any]],
            files: list[Path] | None = None) -> tuple[Path, dict[str, Any], bool]:
    """(folder, stats, cache hit) of one asset; `build(out_dir) -> stats` runs on a miss."""
    final = root / f"{kind}-{asset_key(settings, files)}"
    if (final / MANIFEST).is_file() and not force:
        logger.info("demo %s: cache hit %s", kind, final)
        return final, json.loads((final / MANIFEST).read_text()), True

    def build_entry(tmp: Path) -> dict[str, Any]:
        logger.info("demo %s: building %s (first run only; cached afterwards)", kind, final)
        t0 = time.perf_counter()
        stats = build(tmp / "model")
        stats = {**stats, "build_s": round(time.perf_counter() - t0, 1),
                 "settings": settings.model_dump(mode="json")}
        (tmp / MANIFEST).write_text(json.dumps(stats, indent=2))
        return stats

    # Replaces a forced rebuild's old entry, or a stale half-entry without a manifest.
    return final, atomic_write_dir(final, build_entry), False


def _load_sample_rows() -> tuple[list[Any], list[Any]]:
    """The bundled sample's train and test examples."""
    from rlaif.data.hh import load_hh

    return load_hh("sample", split="train").examples, load_hh("sample", split="test").examples


def build_real_assets(settings: RealAssetSettings | None = None, cache_dir: str | Path | None = None,
                      force: bool = False) -> DemoAssets:
    """The real demo's policy (SmolLM2-135M-Instruct + rudeness on real red-team openings,
    `rlaif.demo.rude`), its evaluator (all-MiniLM-L6-v2 + a logistic head on the Davidson
    tweets, `rlaif.demo.evaluator`) and its helpfulness judge (MiniLM + a head on real hh-rlhf
    openings, `rlaif.demo.helpfulness`), cached like the toy ones; each key also hashes the
    data and weights it starts from."""
    from rlaif.data.hh import load_hh, sample_path
    from rlaif.data.labelled import labelled_path, load_labelled
    from rlaif.demo.evaluator import VALIDATION_DIR, build_evaluator
    from rlaif.demo.helpfulness import build_helpfulness
    from rlaif.demo.openings import openings
    from rlaif.demo.rude import build_rude_policy, sft_dialogues
    from rlaif.demo.weights import minilm_dir, smollm2_gguf

    settings = settings or RealAssetSettings()
    root = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / f"demo-v{ASSET_VERSION}"
    gguf, encoder = smollm2_gguf(), minilm_dir()
    data = {(src, split): sample_path(split, src) for src in ("sample", "redteam", "hh-harmless")
            for split in ("train", "test")}
    davidson = [labelled_path("davidson", split) for split in ("train", "validation")]
    weights = sorted(p for p in encoder.iterdir() if p.suffix == ".safetensors")
    policy_files = [data["hh-harmless", "train"], data["redteam", "train"], data["sample", "train"], gguf]
    evaluator_files = [*davidson, data["redteam", "test"], *sorted(VALIDATION_DIR.iterdir()), *weights]
    helpfulness_files = [data["hh-harmless", "train"], data["hh-harmless", "test"], *weights]

    def rows(src: str, split: str) -> list[Any]:
        return load_hh(src, split=split).examples

    def labelled(split: str) -> list[tuple[str, int]]:
        return [(t.text, int(t.toxic)) for t in load_labelled("davidson", split=split)]

    policy_dir, policy_stats, policy_hit = _cached(
        root, "smollm2-rude", settings.policy, force,
        lambda out: build_rude_policy(out, gguf, sft_dialogues(
            rows("hh-harmless", "train"), rows("redteam", "train"), rows("sample", "train"),
            settings.policy), settings.policy), files=policy_files)
    evaluator_dir, evaluator_stats, evaluator_hit = _cached(
        root, "evaluator-minilm", settings.evaluator, force,
        lambda out: build_evaluator(
            out, labelled("train"),
            {"Davidson tweets, validation split": labelled("validation"),
             "red-team sample TEST replies (synthetic)": reply_labels(rows("redteam", "test"))},
            encoder, settings.evaluator,
            trained_on="the Davidson et al. (2017) tweets, human-labelled (hate or offensive = "
                       "toxic, neither = clean; MIT)"), files=evaluator_files)
    helpfulness_dir, helpfulness_stats, helpfulness_hit = _cached(
        root, "helpfulness-minilm", settings.helpfulness, force,
        lambda out: build_helpfulness(out, openings(rows("hh-harmless", "train")),
                                      openings(rows("hh-harmless", "test")), encoder,
                                      settings.helpfulness), files=helpfulness_files)
    manifest = {"asset_version": ASSET_VERSION, "policy": policy_stats, "evaluator": evaluator_stats,
                "helpfulness": helpfulness_stats}
    return DemoAssets(root, policy_dir / "model", evaluator_dir / "model",
                      f"{policy_dir.name}+{evaluator_dir.name}+{helpfulness_dir.name}",
                      policy_hit and evaluator_hit and helpfulness_hit, manifest,
                      helpfulness=helpfulness_dir / "model")
