import numpy as np
import pytest
import torch

from model.checkpoint import checkpoint_path, load_checkpoint
from model.errors import TrainingError
from model.registry import build_model
from model.spec import ModelConfig, TrainConfig
from model.trainer import resolve_device, train

SIZES = [30, 40, 8, 12]


def data(n=700, seed=0):
    rng = np.random.default_rng(seed)
    x = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    click = (rng.random(n) < 0.3 + 0.4 * (x[:, 0] % 2)).astype(np.float32)
    conv = click * (rng.random(n) < 0.5).astype(np.float32)
    return x, click, conv


def fresh(arch="taml", seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(architecture=arch), SIZES)


CFG = TrainConfig(batch_size=100, epochs=2, progress=False, log_every=3, seed=5)


def state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_deterministic_for_a_seed():
    x, c, v = data()
    m1, m2 = fresh(), fresh()
    r1 = train(m1, x, c, v, CFG)
    r2 = train(m2, x, c, v, CFG)
    assert_identical(state(m1), state(m2))
    assert r1.history == r2.history
    assert r1.steps == 14 and r1.samples == 1400  # 7 steps per epoch (last batch 100 of 700)


@pytest.mark.parametrize("arch, kill_at", [("taml", 3), ("taml", 7), ("mlp", 9)])
def test_resume_after_kill_is_bit_identical(tmp_path, arch, kill_at):
    x, c, v = data()
    cfg = CFG.model_copy(update={"checkpoint_every": 2})
    ref = fresh(arch)
    ref_result = train(ref, x, c, v, cfg)

    ckpt = tmp_path / "ckpt"
    killed = fresh(arch)
    partial = train(killed, x, c, v, cfg, checkpoint_dir=ckpt, stop_after_steps=kill_at)
    assert partial.steps == kill_at and checkpoint_path(ckpt).exists()
    assert load_checkpoint(ckpt)["step"] == kill_at
    resumed = fresh(arch, seed=123)  # a new process: different initial weights, overwritten by the checkpoint
    result = train(resumed, x, c, v, cfg, checkpoint_dir=ckpt)
    assert result.resumed_from_step == kill_at and result.steps == ref_result.steps
    assert_identical(state(resumed), state(ref))
    assert result.history == ref_result.history
    assert not list(ckpt.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_checkpoint_of_another_run_is_refused(tmp_path):
    x, c, v = data()
    train(
        fresh(),
        x,
        c,
        v,
        CFG.model_copy(update={"checkpoint_every": 2}),
        checkpoint_dir=tmp_path,
        stop_after_steps=2,
    )
    with pytest.raises(TrainingError, match="another run"):
        train(fresh(), x, c, v, CFG.model_copy(update={"batch_size": 50}), checkpoint_dir=tmp_path)


def test_max_steps_and_bad_input():
    x, c, v = data()
    r = train(fresh(), x, c, v, CFG.model_copy(update={"max_steps": 4}))
    assert r.steps == 4
    x_bad = x.copy()
    x_bad[0, 2] = SIZES[2]
    with pytest.raises(TrainingError, match="column 2 holds indices outside"):
        train(fresh(), x_bad, c, v, CFG)
    with pytest.raises(TrainingError, match="no training samples"):
        train(fresh(), x[:0], c[:0], v[:0], CFG)


def test_training_reduces_loss_and_device_choice():
    x, c, v = data(2000)
    r = train(fresh("esmm"), x, c, v, CFG.model_copy(update={"epochs": 4, "lr": 0.01}))
    assert r.history[-1]["ctr"] < r.history[0]["ctr"]
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("arch", ["taml", "mlp", "mmoe", "ple", "esmm", "aitm"])
def test_held_ctr_passes_no_gradient_to_the_ctr_output(arch):
    """train.ctr_epochs: after its passes no loss term (CTR, CTCVR, KD, calibrator) trains pCTR."""
    model = fresh(arch)
    x, click, conv = (torch.as_tensor(a) for a in data(200))
    out = model(x)
    ctr = [out["ctr_logit"]] + ([out["learner_logits"]] if "learner_logits" in out else [])
    cvr = out["conv_logit"] if arch == "aitm" else out["cvr_logit"]
    loss, _ = model.loss(model.hold_ctr(out), click, conv)
    grads = torch.autograd.grad(loss, [*ctr, cvr], allow_unused=True)
    assert grads[0] is None or torch.count_nonzero(grads[0]) == 0
    if arch == "taml":  # the CTR learners' KD term trains nothing; the CVR learners' does
        assert torch.count_nonzero(grads[1][0]) == 0 and torch.count_nonzero(grads[1][1]) > 0
    assert torch.count_nonzero(grads[-1]) > 0


def test_ctr_and_embedding_epochs_leave_the_ctr_path_where_the_first_pass_put_it():
    """TAML's CTR path is embedding -> CTR task expert -> CTR learners: with both held after pass 1,
    the embedding table is bit-identical to a one-pass run and pCTR moves only by Adam's decaying
    momentum (~10 steps' worth), while the CVR side goes on learning."""
    x, click, conv = data()
    cfg = CFG.model_copy(update={"batch_size": 20})  # 35 steps a pass, so the momentum tail is short
    one = fresh()
    train(one, x, click, conv, cfg.model_copy(update={"epochs": 1}))
    held = fresh()
    train(held, x, click, conv, cfg.model_copy(update={"epochs": 3, "ctr_epochs": 1, "embedding_epochs": 1}))
    free = fresh()
    train(free, x, click, conv, cfg.model_copy(update={"epochs": 3}))
    assert torch.equal(one.embedding.weight, held.embedding.weight)
    assert not torch.equal(one.embedding.weight, free.embedding.weight)
    xt = torch.as_tensor(x)
    with torch.no_grad():
        p1, ph, pf = one(xt), held(xt), free(xt)
    moved_held = (ph["p_ctr"] - p1["p_ctr"]).abs().mean()
    moved_free = (pf["p_ctr"] - p1["p_ctr"]).abs().mean()
    assert moved_held < 0.2 * moved_free
    assert (ph["p_cvr"] - p1["p_cvr"]).abs().mean() > 0.2 * (pf["p_cvr"] - p1["p_cvr"]).abs().mean()


def test_ctr_epochs_refuse_data_parallel_training(monkeypatch):
    from model import distributed

    monkeypatch.setattr(distributed, "current", lambda: distributed.DistInfo(rank=0, world_size=2))
    with pytest.raises(TrainingError, match="ctr_epochs needs single-process"):
        train(fresh(), *data(), CFG.model_copy(update={"ctr_epochs": 1}))
