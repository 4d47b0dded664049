"""rlaif: reinforcement learning from AI feedback.

    from rlaif import build_judge
    judge = build_judge("roberta-hate")
    judge.score([("Hi", "You are terrible and I hate you.")])

Importing or building changes no global state. To keep credentials out of the SDKs' debug
logs (botocore logs signed headers), call `rlaif.install_log_redaction()` once before
scoring with an API judge; the `rlaif` command line does it at start.
"""

from rlaif.judges.base import Judge, JudgeError, MemberScore, Sample, Scale, Score, Usage
from rlaif.judges.registry import build_judge
from rlaif.judges.spec import load_spec
from rlaif.secrets import install_log_redaction

__version__ = "0.1.0"
__all__ = ["Judge", "JudgeError", "MemberScore", "Sample", "Scale", "Score", "Usage", "build_judge",
           "install_log_redaction", "load_spec"]
