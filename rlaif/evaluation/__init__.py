"""Hold-out evaluation: toxicity before vs after training, with an independent evaluator.

    toxicity.py    judge score -> toxicity in [0, 1] (P(toxic label) or the judge's scale)
    helpfulness.py the helpfulness judge (its value as it is, higher = more helpful)
    comparison.py  before/after statistics, paired (cluster) bootstrap interval, improvement
    side.py        HoldoutSide: one side's replies, token ids and scores (eval_before.json)
    quality.py     length, distinct-n, deflection share, perplexity of one side
    deflection.py  the rule-based canned apology / refusal / subject-change detector
    fluency.py     perplexity under the start model; floor texts as reply tokens
    floors.py      floor rows: every metric as if one text were every reply
    kl_rows.py     the KL rows, named for what they are (tempered hold-out KL, training KL)
    holdout.py     Holdout: score a model on the hold-out prompts, keep "before", compare, KL
    report.py      report.md / report.json;  plots.py  the PNGs
"""

from rlaif.evaluation.comparison import compare_before_after
from rlaif.evaluation.holdout import Holdout, HoldoutReport, HoldoutSide, evaluate_holdout, training_kl
from rlaif.evaluation.report import examples_table, summary_table, write_report
from rlaif.evaluation.toxicity import ToxicityEvaluator, make_toxicity_evaluator, toxicity_scores

__all__ = ["Holdout", "HoldoutReport", "HoldoutSide", "ToxicityEvaluator", "compare_before_after",
           "evaluate_holdout", "examples_table", "make_toxicity_evaluator", "summary_table",
           "toxicity_scores", "training_kl", "write_report"]
