"""Baselines, each faithful to its own paper: MLP, MMoE, PLE, ESMM, AITM."""

from model.baselines.aitm import AITM
from model.baselines.esmm import ESMM
from model.baselines.mlp import MLP
from model.baselines.mmoe import MMoE
from model.baselines.ple import PLE

__all__ = ["AITM", "ESMM", "MLP", "MMoE", "PLE"]
