import torch
from torch import nn

from model.layers import FieldEmbedding, GroupedLinear, mix, scatter_gates


def test_grouped_linear_equals_separate_linears():
    torch.manual_seed(0)
    g = GroupedLinear(3, 5, 4)
    x = torch.randn(3, 7, 5)
    shared = torch.randn(7, 5)
    for i in range(3):
        lin = nn.Linear(5, 4)
        lin.weight.data = g.weight[i].T.detach().clone()
        lin.bias.data = g.bias[i, 0].detach().clone()
        torch.testing.assert_close(g(x)[i], lin(x[i]))
        torch.testing.assert_close(g(shared)[i], lin(shared))


def test_mix_gradients():
    gates = torch.randn(4, 3, 5, dtype=torch.double, requires_grad=True)
    experts = torch.randn(4, 5, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(mix, (gates, experts))
    ref = torch.einsum("bgn,bnd->gbd", gates, experts)
    torch.testing.assert_close(mix(gates, experts), ref)


def test_scatter_gates_places_weights():
    w = torch.tensor([[[0.2, 0.8], [0.6, 0.4]]])
    full = scatter_gates(w, torch.tensor([[0, 2], [1, 2]]), 3)
    torch.testing.assert_close(full, torch.tensor([[[0.2, 0.0, 0.8], [0.0, 0.6, 0.4]]]))


def test_field_embedding_offsets_and_sparse_grad():
    emb = FieldEmbedding([3, 4], dim=2, init_std=0.1)
    x = torch.tensor([[2, 3]])
    out = emb(x)
    torch.testing.assert_close(out, torch.cat([emb.weight[2], emb.weight[3 + 3]]).unsqueeze(0))
    out.sum().backward()
    assert emb.weight.grad.is_sparse
    assert sorted(emb.weight.grad.coalesce().indices()[0].tolist()) == [2, 6]
