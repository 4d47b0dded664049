"""rlaif: reinforcement learning from AI feedback.

    from rlaif import build_judge
    judge = build_judge("roberta-hate")
    judge.score([("Hi", "You are terrible and I hate you.")])
"""

from rlaif.judges.base import Judge, JudgeError, Sample, Scale, Score, Usage
from rlaif.judges.spec import build_judge, load_spec

__version__ = "0.1.0"
__all__ = ["Judge", "JudgeError", "Sample", "Scale", "Score", "Usage", "build_judge", "load_spec"]
