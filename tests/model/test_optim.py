import torch
import torch.nn.functional as F

from model.optim import LazyAdam, sum_duplicates

HP = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}


def test_equals_dense_adam_when_every_row_is_touched():
    torch.manual_seed(0)
    w_sparse = torch.nn.Parameter(torch.randn(5, 3))
    w_dense = torch.nn.Parameter(w_sparse.detach().clone())
    lazy = LazyAdam([w_sparse], **HP)
    dense = torch.optim.Adam([w_dense], **HP)
    for step in range(5):
        idx = torch.tensor([4, 0, 1, 2, 3, 0, 4, 4])  # duplicates; all rows
        target = torch.randn(8, 3, generator=torch.Generator().manual_seed(step))
        for w, opt, sparse in ((w_sparse, lazy, True), (w_dense, dense, False)):
            opt.zero_grad()
            F.mse_loss(F.embedding(idx, w, sparse=sparse), target).backward()
            opt.step()
    torch.testing.assert_close(w_sparse, w_dense, rtol=1e-5, atol=1e-6)


def test_untouched_rows_do_not_move_not_even_by_l2():
    w = torch.nn.Parameter(torch.ones(6, 2))
    opt = LazyAdam([w], **HP)
    for _ in range(3):
        opt.zero_grad()
        F.embedding(torch.tensor([1, 1, 3]), w, sparse=True).sum().backward()
        opt.step()
    moved = (w.detach() != 1).any(1).tolist()
    assert moved == [False, True, False, True, False, False]


def test_sum_duplicates():
    g = torch.sparse_coo_tensor(
        torch.tensor([[3, 1, 3]]), torch.tensor([[1.0], [2.0], [4.0]]), (5, 1), check_invariants=False
    )
    rows, vals = sum_duplicates(g)
    assert rows.tolist() == [1, 3] and vals.flatten().tolist() == [2.0, 5.0]
