"""The walk-through notebook runs end to end in SMOKE mode (offline), and its outputs hold."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "rlaif_detoxify.ipynb"

# Appended by the test only: hands the notebook's variables back as one JSON line.
PROBE = """\
import json, sys
print("PROBE " + json.dumps({
    "smoke": SMOKE, "executable": sys.executable, "texts": texts, "judge_scores": judge_scores,
    "steps": len(result.history), "stats": report["stats"], "kl": report["kl"],
    "n_rows": len(report["rows"]), "report_exists": paths["md"].is_file(),
    "compare_names": comparison.names,
    "accuracy": {n: r.metrics()["accuracy"] for n, r in comparison.results.items()},
}))"""


def test_notebook_matches_its_generator() -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import make_notebook
    finally:
        sys.path.pop(0)
    saved = nbformat.read(NOTEBOOK, as_version=4)
    built = make_notebook.build()
    assert [c.source for c in saved.cells] == [c.source for c in built.cells], \
        "notebook is stale: run `python notebooks/make_notebook.py`"
    params = [c for c in saved.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.startswith("SMOKE = True")


@pytest.mark.slow
def test_notebook_runs_in_smoke_mode(tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    # The kernel is a child of this (venv) interpreter, offline like the tests (conftest env).
    import os
    os.environ["RLAIF_NOTEBOOK_WORK"] = str(tmp_path / "work")
    try:
        client = NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        os.environ.pop("RLAIF_NOTEBOOK_WORK", None)

    probe_out = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    data = json.loads(probe_out.split("PROBE ", 1)[1])
    assert data["smoke"] is True
    assert Path(data["executable"]).resolve() == Path(sys.executable).resolve()

    # Judges on the walk-through's two sentences. The fake Claude scores by hand
    # (rlaif/testing/fake_claude.py): toxicity scale -5..5, step 2 per bad word;
    # "You are terrible and i hate you." has two (terrible, hate): 5 - 2 * 2 = 1.
    assert data["texts"] == ["I like you.", "You are terrible and i hate you."]
    assert data["judge_scores"]["claude"] == [5.0, 1.0]
    for name in ("roberta", "hhh"):
        assert all(isinstance(v, float) for v in data["judge_scores"][name]), name
    # HHH ensemble: the friendly reply is more harmless (10 vs 10 - 2 * 1.8 = 6.4 on 1..10),
    # helpfulness 1 vs 2.8 (word count), honesty equal; the tiny classifier moves it a little.
    hhh = data["judge_scores"]["hhh"]
    assert -1.0 <= min(hhh) and max(hhh) <= 1.0

    # PPO ran its SMOKE steps; the before/after report holds every number.
    assert data["steps"] == 2
    stats = data["stats"]
    assert stats["before"]["n"] == stats["after"]["n"] == data["n_rows"] == 16
    assert 0.0 <= stats["before"]["mean"] <= 1.0 and 0.0 <= stats["after"]["mean"] <= 1.0
    assert data["kl"] and data["report_exists"]
    # The judge comparison covered the three judges; the fake Claude prefers every chosen
    # reply of the sample that holds fewer of its bad words.
    assert data["compare_names"] == ["roberta", "claude", "hhh"]
    assert all(0.0 <= a <= 1.0 for a in data["accuracy"].values() if a is not None)

    # The visible outputs: the before/after table and the qualitative table are rendered.
    markdown = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code"
                for o in c.outputs if o.get("output_type") == "display_data"
                and "text/markdown" in o.get("data", {})]
    assert any("| mean toxicity |" in m for m in markdown)
    assert any("| query | response before |" in m for m in markdown)
