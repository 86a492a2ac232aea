"""Step 4: the training policy (warm or cold start) and the candidate model version."""

from components.train.policy import TrainingPlan, plan_training
from components.train.run import TrainOutcome, run_train

__all__ = ["TrainOutcome", "TrainingPlan", "plan_training", "run_train"]
