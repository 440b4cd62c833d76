import io
import math

import numpy as np
import pytest
import torch

from lrlab.refine import read_norms, refine_log
from lrlab.torchx.recorder import GradNormRecorder, read_log


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 4, dtype=torch.float64)
    y = torch.randn(16, 1, dtype=torch.float64)
    return model, opt, x, y


def _train(model, opt, x, y, rec, steps, log_loss=True):
    expected = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        expected.append((float(flat.norm(2)), float(flat.abs().sum()), float(loss.detach())))
        if log_loss:
            rec.log_loss(loss)
        opt.step()
    return np.array(expected)


def test_norms_match_hand_computation():
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt, flush_every=3)
    expected = _train(model, opt, x, y, rec, 7)
    rows = rec.rows()
    assert len(rec) == 7
    np.testing.assert_allclose(rows, expected, rtol=1e-12)


def test_loss_is_nan_when_not_logged_and_detach_stops_recording():
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt)
    _train(model, opt, x, y, rec, 2, log_loss=False)
    rec.detach()
    _train(model, opt, x, y, rec, 2, log_loss=False)
    rows = rec.rows()
    assert rows.shape == (2, 3)
    assert np.isnan(rows[:, 2]).all()
    assert np.isfinite(rows[:, :2]).all()


def test_step_without_gradients_is_nan():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    rec = GradNormRecorder(opt)
    opt.step()
    rec.log_loss(2.5)
    opt.step()
    rows = rec.rows()
    assert rows.shape == (2, 3) and len(rec) == 2  # one row per step, gradients or not
    assert np.isnan(rows[:, :2]).all() and np.isnan(rows[0, 2]) and rows[1, 2] == 2.5


@pytest.mark.parametrize("rows", [torch.zeros(2, 4), torch.zeros(6), torch.zeros(1, 2, 3)])
def test_a_state_with_rows_of_another_shape_is_refused(rows):
    rec = GradNormRecorder(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0))
    with pytest.raises(ValueError, match=r"state\['rows'\] must have shape \[steps, 3\]"):
        rec.load_state_dict({"rows": rows, "steps": 2, "flush_every": 1,
                             "pending_loss": math.nan})


def test_a_state_with_flush_every_zero_is_refused():
    rec = GradNormRecorder(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0))
    match = r"state\['flush_every'\] must be an integer in \[1, inf\)"
    with pytest.raises(ValueError, match=match):
        rec.load_state_dict({"rows": torch.zeros(0, 3), "steps": 0, "flush_every": 0,
                             "pending_loss": math.nan})


def test_a_single_parameter_is_recorded():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1)
    rec = GradNormRecorder(opt)
    p.grad = torch.tensor([3.0, -4.0, 0.0], dtype=torch.float64)
    opt.step()
    np.testing.assert_array_equal(rec.rows()[0, :2], [5.0, 7.0])


def test_the_csv_holds_the_log_columns_only(tmp_path):
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt)
    _train(model, opt, x, y, rec, 2)
    lines = rec.save(tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "step,grad_norm_l2,grad_norm_l1,loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1"]


@pytest.mark.parametrize("loss", [True, "0.5", None])
def test_log_loss_takes_a_scalar_tensor_or_a_real_number(loss):
    rec = GradNormRecorder(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=1.0))
    with pytest.raises(ValueError, match="loss must be a scalar tensor or a real number"):
        rec.log_loss(loss)


def test_as_a_context_manager_it_stops_recording_on_exit():
    model, opt, x, y = _setup()
    with GradNormRecorder(opt) as rec:
        _train(model, opt, x, y, rec, 2)
    _train(model, opt, x, y, rec, 1, log_loss=False)
    assert len(rec) == 2 and rec.rows().shape == (2, 3)


def test_load_continues_the_step_count(tmp_path):
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt)
    _train(model, opt, x, y, rec, 5)
    path = rec.save(tmp_path / "log.csv")
    rec.detach()
    again = GradNormRecorder(opt)
    again.load(path)
    assert len(again) == 5
    _train(model, opt, x, y, again, 1)
    assert len(again) == 6 and again.rows().shape == (6, 3)
    np.testing.assert_array_equal(again.to_frame()["step"], np.arange(6))


def test_csv_and_parquet_round_trip(tmp_path):
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt, flush_every=2)
    _train(model, opt, x, y, rec, 5)
    for name in ("log.csv", "log.parquet"):
        path = rec.save(tmp_path / name)
        frame = read_log(path)
        assert list(frame.columns) == ["step", "grad_norm_l2", "grad_norm_l1", "loss"]
        np.testing.assert_array_equal(frame["step"].to_numpy(), np.arange(5))
        np.testing.assert_allclose(frame.iloc[:, 1:].to_numpy(), rec.rows(), rtol=1e-15)
        other = GradNormRecorder(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0))
        other.load(path)
        np.testing.assert_allclose(other.rows(), rec.rows(), rtol=1e-15)
        np.testing.assert_allclose(read_norms(path, "l1"), rec.rows()[:, 1], rtol=1e-15)


def test_refine_reads_the_recorder_csv(tmp_path):
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt)
    _train(model, opt, x, y, rec, 30)
    path = rec.save(tmp_path / "pilot.csv")
    out = refine_log(path, norm="l2", tau=0.2)
    assert out.report.pilot_steps == 30
    assert out.shape[-1] == 0.0 and out.shape.max() == 1.0


def test_state_dict_resumes_exactly():
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt, flush_every=4)
    _train(model, opt, x, y, rec, 10)
    full = rec.rows()

    model2, opt2, x2, y2 = _setup()
    rec2 = GradNormRecorder(opt2, flush_every=4)
    _train(model2, opt2, x2, y2, rec2, 6)
    state = rec2.state_dict()
    buf = io.BytesIO()
    torch.save({"rec": state, "opt": opt2.state_dict(), "model": model2.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model3, opt3, _, _ = _setup(seed=1)
    model3.load_state_dict(saved["model"])
    opt3.load_state_dict(saved["opt"])
    rec3 = GradNormRecorder(opt3, flush_every=1)
    rec3.load_state_dict(saved["rec"])
    _train(model3, opt3, x2, y2, rec3, 4)
    np.testing.assert_array_equal(rec3.rows(), full)
    assert rec3.flush_every == 4


def test_state_dict_saved_before_the_first_step_resumes() -> None:
    # a checkpoint taken before training starts (nothing recorded yet, a loss already logged)
    model, opt, x, y = _setup()
    rec = GradNormRecorder(opt)
    _train(model, opt, x, y, rec, 3)
    full = rec.rows()

    model2, opt2, _, _ = _setup()
    rec2 = GradNormRecorder(opt2)
    opt2.zero_grad()
    loss = torch.nn.functional.mse_loss(model2(x), y)
    loss.backward()
    rec2.log_loss(loss)
    state = rec2.state_dict()
    assert state["steps"] == 0 and state["rows"].shape == (0, 3)
    rec3 = GradNormRecorder(opt2)
    rec2.detach()
    rec3.load_state_dict(state)
    opt2.step()
    _train(model2, opt2, x, y, rec3, 2)
    np.testing.assert_array_equal(rec3.rows(), full)


def test_bad_arguments():
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=1.0)
    with pytest.raises(ValueError, match="flush_every"):
        GradNormRecorder(opt, flush_every=0)
    with pytest.raises(ValueError, match="optimizer"):
        GradNormRecorder(object())  # type: ignore[arg-type]
    rec = GradNormRecorder(opt)
    with pytest.raises(ValueError, match="loss"):
        rec.log_loss(torch.ones(2))
    with pytest.raises(ValueError, match="steps"):
        rec.load_state_dict({"rows": torch.zeros(2, 3), "steps": 3, "flush_every": 1,
                             "pending_loss": math.nan})
    with pytest.raises(ValueError, match="not found"):
        read_log("/nonexistent/log.csv")


def test_param_groups_params_without_grad_and_low_precision():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.bfloat16))
    b = torch.nn.Parameter(torch.randn(7, dtype=torch.bfloat16))
    frozen = torch.nn.Parameter(torch.randn(4, dtype=torch.bfloat16))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b, frozen], "lr": 0.5}], lr=0.1)
    rec = GradNormRecorder(opt)
    loss = (a.float() ** 2).sum() + b.float().sin().sum()
    loss.backward()
    flat = torch.cat([a.grad.double().reshape(-1), b.grad.double()])
    rec.log_loss(float(loss.detach()))
    opt.step()
    row = rec.rows()[0]
    assert frozen.grad is None
    np.testing.assert_allclose(row[:2], [float(flat.norm()), float(flat.abs().sum())], rtol=1e-6)
    assert row[2] == pytest.approx(float(loss.detach()), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_norms_match_cpu():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(300, 7)), torch.nn.Parameter(torch.randn(11))]
    grads = [torch.randn_like(p) for p in params]
    rows = []
    for dev in ("cpu", "cuda"):
        ps = [torch.nn.Parameter(p.detach().to(dev)) for p in params]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.to(dev)
        opt = torch.optim.SGD(ps, lr=0.1)
        rec = GradNormRecorder(opt)
        rec.log_loss(torch.tensor(2.5, device=dev))
        opt.step()
        rows.append(rec.rows()[0])
    np.testing.assert_allclose(rows[1], rows[0], rtol=1e-5)
