"""Step 5: score candidate and production on the same unseen day and decide the blessing."""

from components.evaluate.evidence import Day, Scores, base_rate_scores
from components.evaluate.gate import Blessing, ModelMetrics, RuleResult, judge
from components.evaluate.run import (
    EvaluateError,
    EvaluateOutcome,
    NoProductionModelError,
    day_metrics,
    run_evaluate,
    score_served_model,
)

__all__ = [
    "Blessing",
    "Day",
    "Scores",
    "base_rate_scores",
    "EvaluateError",
    "EvaluateOutcome",
    "ModelMetrics",
    "NoProductionModelError",
    "RuleResult",
    "day_metrics",
    "judge",
    "run_evaluate",
    "score_served_model",
]
