"""Step 5: score candidate and production on the same unseen day and decide the blessing."""

from components.evaluate.gate import Blessing, ModelMetrics, RuleResult, judge

__all__ = ["Blessing", "ModelMetrics", "RuleResult", "judge"]
