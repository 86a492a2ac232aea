"""PyTorch internals the model code relies on, one guarded function each (like ``taml.core.shims``,
which model/ may not import: it is the leaf of the project).

Each names the release it was checked against (:data:`TORCH_CHECKED`, held equal to
``requirements.lock``'s pin by ``tests/model/test_torch_shims.py``, which checks each behaviour on
the installed release) and raises :class:`TorchVersionError` on any other.
"""

from __future__ import annotations

import functools
import importlib.metadata

import torch
from torch import nn

from model.errors import ModelError

TORCH_CHECKED = "2.13.0"


class TorchVersionError(ModelError):
    """A shim runs against a torch release it was not checked against."""


@functools.cache
def _check(what: str) -> None:
    have = importlib.metadata.version("torch").split("+")[0]  # 2.13.0+cpu, +cu128: one release
    if have != TORCH_CHECKED:
        raise TorchVersionError(
            f"{what} relies on torch internals checked on torch=={TORCH_CHECKED}, but {have} is "
            f"installed: re-check it (tests/model/test_torch_shims.py) and update TORCH_CHECKED"
        )


def sparse_entries(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row ids, values) of an uncoalesced sparse row gradient, duplicates kept, without copying.

    The public ``indices()``/``values()`` refuse an uncoalesced tensor, and coalescing is the very
    cost ``model.optim.sum_duplicates`` avoids; ``_indices()``/``_values()`` return the stored
    entries as they are.
    """
    _check("reading an uncoalesced sparse gradient")
    return grad._indices()[0], grad._values()


def ddp_ignore(model: nn.Module, names: list[str]) -> None:
    """Make DistributedDataParallel skip the named parameters (synced by hand: sparse gradients,
    which NCCL cannot all-reduce). The static method is how torch's own tests and TorchRec do it."""
    from torch.nn.parallel import DistributedDataParallel

    _check("excluding parameters from DistributedDataParallel")
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, names)
