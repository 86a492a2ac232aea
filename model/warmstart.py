"""Warm start: a parent version's weights (and optimizer moments) under a grown vocabulary.

Vocabularies only grow, so field j's old rows 0..n_j-1 keep their meaning; the fused embedding
table is re-laid out field by field (later fields move when earlier ones grow), old rows are copied
and new rows get the fresh initialisation N(0, embedding_init_std²). Every other weight is copied as is.
The embedding tables' Adam moments are re-laid out the same way (new rows start at zero, as a
fresh LazyAdam's do); the dense optimizer's state does not depend on the vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch

from model.artifacts import LoadedModel
from model.base import MultiTaskModel
from model.errors import ModelConfigError
from model.layers import FieldEmbedding
from model.registry import build_model
from model.vocab import Vocabulary


def warm_start(parent: LoadedModel, vocab: Vocabulary) -> MultiTaskModel:
    """A new model for ``vocab`` (a :meth:`Vocabulary.grow` of the parent's) initialised from ``parent``.

    Seed torch beforehand: the new embedding rows are drawn from its generator.
    """
    old_sizes = parent.vocab.sizes
    vocab.check_spec(parent.spec)
    for name, old, new in zip(parent.vocab.fields, old_sizes, vocab.sizes, strict=True):
        if (
            new < old
            or parent.vocab.fields[name].values
            != vocab.fields[name].values[: len(parent.vocab.fields[name].values)]
        ):
            raise ModelConfigError(
                f"field {name!r}: the new vocabulary does not extend the parent's (vocabularies only grow)"
            )
    model = build_model(parent.config, vocab.sizes)
    old_state = parent.model.state_dict()
    new_state = model.state_dict()
    embedding_names = {
        f"{prefix}.weight" for prefix, m in model.named_modules() if isinstance(m, FieldEmbedding)
    }
    with torch.no_grad():
        for name, tensor in new_state.items():
            src = old_state[name].to(tensor.device)
            if name in embedding_names:
                _copy_rows(tensor, src, old_sizes, vocab.sizes)
            else:
                tensor.copy_(src)
    model.load_state_dict(new_state)
    return model


def _copy_rows(dst: torch.Tensor, src: torch.Tensor, old_sizes: list[int], new_sizes: list[int]) -> None:
    old_start = new_start = 0
    for old, new in zip(old_sizes, new_sizes, strict=True):
        dst[new_start : new_start + old] = src[old_start : old_start + old]
        old_start += old
        new_start += new


def grow_optimizer_state(state: dict[str, Any], old_sizes: list[int], new_sizes: list[int]) -> dict[str, Any]:
    """The parent's optimizer state with every embedding-shaped moment re-laid out for ``new_sizes``.

    ``state`` is ``{"dense": ..., "sparse": ...}`` as the trainer returns it; only the sparse
    (embedding) optimizer holds tensors whose first dimension is the fused table's row count.
    """
    if list(old_sizes) == list(new_sizes):
        return state
    old_rows, new_rows = sum(old_sizes), sum(new_sizes)
    sparse = state["sparse"]
    grown: dict[Any, dict[str, Any]] = {}
    for key, moments in sparse["state"].items():
        out = {}
        for name, t in moments.items():
            if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == old_rows:
                dst = torch.zeros((new_rows, *t.shape[1:]), dtype=t.dtype)
                _copy_rows(dst, t, old_sizes, new_sizes)
                out[name] = dst
            elif isinstance(t, torch.Tensor) and t.ndim >= 1:
                raise ModelConfigError(
                    f"optimizer state {key}.{name} has {t.shape[0]} rows, the parent's vocabulary {old_rows}"
                )
            else:
                out[name] = t
        grown[key] = out
    return {**state, "sparse": {**sparse, "state": grown}}
