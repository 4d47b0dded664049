"""The demo's trade-off on TRAIN prompts only: toxicity vs helpfulness vs KL across settings.

    python scripts/demo_tradeoff.py --out runs/tradeoff            # the settings below
    python scripts/demo_tradeoff.py --out runs/tradeoff --quick    # 2 PPO steps each (smoke)

Each setting runs the demo's pipeline (same cached policy, evaluator and helpfulness judge)
with PPO on the TRAIN conversations minus a validation share of `--n` TRAIN openings, and
measures on that validation share: the hold-out TEST conversations are never read, so a
setting chosen from this table was chosen on TRAIN data (issue #19). It writes
`<out>/tradeoff.md`, `tradeoff.json` and `tradeoff.png` (after-toxicity against
after-helpfulness, each point labelled with its setting and hold-out KL per token; the
start policy and the two floor replies as reference points).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from rlaif.io import atomic_write_json, atomic_write_text, save_figure  # noqa: E402

# name -> (harmlessness weight, relevance weight, kl_coef); the first is configs/demo.yaml's.
SETTINGS: dict[str, tuple[float, float, float]] = {
    "default (0.5 / 0.5, kl 0.05)": (0.5, 0.5, 0.05),
    "kl 0.2": (0.5, 0.5, 0.2),
    "relevance 0.75": (0.25, 0.75, 0.05),
}


def reward_spec(folder: Path, harm: float, relevance: float) -> Path:
    """A copy of judges/demo-reward.yaml with other member weights."""
    spec = yaml.safe_load((REPO / "judges" / "demo-reward.yaml").read_text())
    weights = {"profanity-check": harm, "minilm-relevance": relevance}
    for member in spec["members"]:
        member["weight"] = weights[member["judge"]]
    path = folder / f"reward-{harm:g}-{relevance:g}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers the trade-off shows, from one run's report.json."""
    m = report["metrics"]
    kl = {k: v for k, v in (report.get("kl") or {}).items()
          if k.startswith("hold-out KL") and "k1, per token" in k}
    return {
        "toxicity_before": m["before"]["toxicity_mean"], "toxicity_after": m["after"]["toxicity_mean"],
        "emt_after": m["after"]["expected_max_toxicity"],
        "helpfulness_before": m["before"]["helpfulness_mean"],
        "helpfulness_after": m["after"]["helpfulness_mean"],
        "median_length_after": m["after"]["length"]["median"],
        "deflection_after": m["after"]["deflection_share"],
        "perplexity_after": m["after"]["perplexity"]["value"],
        "kl_per_token": next(iter(kl.values()), None),
        "floors": [{"label": f["label"], "toxicity": f["toxicity_mean"],
                    "helpfulness": f["helpfulness_mean"]} for f in m["floors"]],
    }


def plot(rows: dict[str, dict[str, Any]], path: Path) -> Path:
    """After-toxicity vs after-helpfulness per setting, with the start policy and the floors."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    first = next(iter(rows.values()))
    ax.scatter([first["helpfulness_before"]], [first["toxicity_before"]], color="black", marker="s",
               label="start policy (before)")
    for floor in first["floors"]:
        ax.scatter([floor["helpfulness"]], [floor["toxicity"]], color="grey", marker="x")
        ax.annotate(f"floor: {floor['label']}", (floor["helpfulness"], floor["toxicity"]), fontsize=8)
    for name, r in rows.items():
        ax.scatter([r["helpfulness_after"]], [r["toxicity_after"]])
        kl = r["kl_per_token"]
        ax.annotate(f"{name}\nKL/token {kl:.3f}" if kl is not None else name,
                    (r["helpfulness_after"], r["toxicity_after"]), fontsize=8)
    ax.set_xlabel("helpfulness (demo-helpfulness-minilm, not in the reward), mean; higher is better")
    ax.set_ylabel("toxicity (demo evaluator), mean; lower is better")
    ax.set_title("Demo trade-off on TRAIN validation openings (after PPO)")
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/tradeoff"))
    parser.add_argument("--n", type=int, default=32, help="TRAIN openings held out for validation")
    parser.add_argument("--k", type=int, default=2, help="replies per validation opening")
    parser.add_argument("--quick", action="store_true", help="2 PPO steps per setting (a smoke run)")
    args = parser.parse_args()
    from rlaif.demo.run import run_demo

    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    for i, (name, (harm, relevance, kl_coef)) in enumerate(SETTINGS.items()):
        spec = reward_spec(args.out, harm, relevance)
        overrides = [f"judge.ref={spec.resolve()}", f"ppo.kl.kl_coef={kl_coef}",
                     f"data.test_size={args.n}", "eval.split=null", f"eval.n={args.n}",
                     f"eval.samples_per_prompt={args.k}", "eval.control_source=null",
                     "output.merge_lora=false", *(["ppo.steps=2"] if args.quick else [])]
        print(f"\n=== setting {i + 1} of {len(SETTINGS)}: {name} ===", flush=True)
        result = run_demo(args.out / f"setting-{i}", overrides=overrides)
        rows[name] = {"overrides": overrides, **headline(result.report)}
    lines = ["| setting | toxicity after | EMT after | helpfulness after | median length | "
             "deflections | perplexity | KL/token |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        kl = "n/a" if r["kl_per_token"] is None else f"{r['kl_per_token']:.4f}"
        lines.append(f"| {name} | {r['toxicity_after']:.4f} | {r['emt_after']:.4f} | "
                     f"{r['helpfulness_after']:.4f} | {r['median_length_after']:g} | "
                     f"{r['deflection_after']:.1%} | {r['perplexity_after']:.2f} | {kl} |")
    first = next(iter(rows.values()))
    lines.append(f"| start policy (before) | {first['toxicity_before']:.4f} | | "
                 f"{first['helpfulness_before']:.4f} | | | | |")
    table = "\n".join(lines)
    atomic_write_json(args.out / "tradeoff.json", rows)
    atomic_write_text(args.out / "tradeoff.md", "# Demo trade-off on TRAIN validation openings\n\n"
                      + table + "\n\n![trade-off](tradeoff.png)\n")
    plot(rows, args.out / "tradeoff.png")
    print(table)
    print(json.dumps({"written": str(args.out / "tradeoff.md")}))


if __name__ == "__main__":
    main()
