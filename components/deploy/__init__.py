"""Step 6: publish a blessed candidate to the registry and move the production alias."""

from components.deploy.run import DeployOutcome, run_deploy, run_deploy_step

__all__ = ["DeployOutcome", "run_deploy", "run_deploy_step"]
