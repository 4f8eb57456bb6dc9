"""Smoke tests of the speed benchmarks: tiny settings, the JSON they write, and the one
exact check they rely on -- the hand-written negative ELBO equals ``ELBOLoss`` (Trace_ELBO)
under the same random draw, value and gradients, with and without padding."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from ppl_fewshot.inference.objectives import ELBOLoss
from ppl_fewshot.models import build

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = {
    "gmn-small": {"z_dim": 4, "state_dim": 8, "channels": 4, "hidden": 16},
    "ns-small": {"c_dim": 6, "z_dim": 3, "hidden": 16, "channels": 4, "num_z_layers": 2},
    "vae-small": {"z_dim": 3, "hidden": 16, "channels": 4},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_handwritten_loss_matches_trace_elbo_with_padding(name):
    common = _load("common")
    torch.manual_seed(0)
    model = build(name, **SMALL[name])
    x = torch.rand(3, 4, 1, 28, 28).lt(0.3).float()
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    pyro_loss, hand = ELBOLoss(model), common.handwritten_loss(model)
    values, grads = [], []
    for fn in (pyro_loss, hand):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        loss = fn(x, mask)
        loss.backward()
        values.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert torch.isfinite(values[0])
    assert torch.allclose(values[0], values[1], rtol=1e-5, atol=1e-4)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    # a different draw gives a different loss: the check above is not vacuous
    torch.manual_seed(8)
    assert not torch.allclose(hand(x, mask).detach(), values[1])


def test_step_overhead_writes_json(tmp_path):
    bench = _load("step_overhead")
    out = tmp_path / "so.json"
    res = bench.main(["--model", "vae-small", "--batch", "1", "--set-size", "2", "--steps", "2",
                      "--warmup", "0", "--threads", "1", "--ladder-rounds", "1",
                      "--profile-steps", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "step_overhead" and data == json.loads(json.dumps(res))
    assert set(data["variants"]) == {"pyro", "torch", "pyro_novalid", "torch_novalid",
                                     "pyro_lean", "pyro_lean_novalid"}
    for v in data["variants"].values():
        assert v["n"] == 2 and 0 < v["q1_ms"] <= v["median_ms"] <= v["q3_ms"]
        assert 0 < v["forward_median_ms"] and v["ratio_to_torch_of_medians"] > 0
    assert data["variants"]["torch"]["ratio_to_torch_of_medians"] == 1.0
    check = data["loss_check"]
    assert check["rel_diff_pyro_torch"] < 1e-5 and check["abs_diff_pyro_lean"] < 1e-3
    assert check["max_abs_grad_diff_pyro_torch"] < 1e-3 * check["max_abs_grad"]
    assert data["ratio_pyro_over_torch"] > 0
    assert len(data["forward_ladder"]["median_ms"]) == 5
    groups = data["profile"]["pyro"]["self_ms_per_forward_by_group"]
    assert groups["torch C kernels and builtins"] > 0
    assert sum(groups.values()) == pytest.approx(
        data["profile"]["pyro"]["total_ms_per_forward_profiled"], rel=1e-6)
    assert "loadavg_1_5_15" in data["machine"] or os.name != "posix"


def test_step_overhead_records_jit_failure_or_timing(tmp_path):
    bench = _load("step_overhead")
    out = tmp_path / "jit.json"
    bench.main(["--model", "gmn-small", "--batch", "1", "--set-size", "2", "--steps", "1",
                "--warmup", "0", "--variants", "pyro,torch", "--jit", "--ladder-rounds", "0",
                "--profile-steps", "0", "--out", str(out)])
    data = json.loads(out.read_text())
    # JitTrace_ELBO either runs (then it is timed) or its error is recorded, never both
    assert ("pyro_jit" in data["errors"]) != ("pyro_jit" in data["variants"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils timeout")
def test_gpu_check_tiny_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_TINY": "1",
           "PYTHON": sys.executable}
    env.pop("PPL_FEWSHOT_DATA", None)  # no data: the script falls back to glyphs
    subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=ROOT, env=env, check=True,
                   timeout=600, capture_output=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["protocol"] == "glyphs" and summary["device"] == "cpu"
    assert summary["all_ok"], summary["stages"]
    assert {"env", "train_probe", "run", "export", "evaluate"} <= set(summary["stages"])
    assert json.loads((tmp_path / "step_overhead_gmn-small.json").read_text())["variants"]
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "model.pt").exists()
    # the run is sized from the probe's rate (at least the probe's steps, at most the cap)
    assert 3 <= summary["run"]["steps"] <= 6 and summary["run"]["seconds_per_step"] > 0
    assert len(summary["eval"]["nll"]) == len(summary["eval"]["shots"]) == 3


@pytest.mark.parametrize("name", ["gmn-small", "ns-small"])
def test_eval_throughput_writes_json(tmp_path, name):
    bench = _load("eval_throughput")
    out = tmp_path / "et.json"
    bench.main(["--model", name, "--episodes", "1", "--set-size", "3", "--particles", "4",
                "--chunks", "auto,4", "--positions", "0,2;all", "--repeats", "1", "--warmup",
                "0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "eval_throughput" and data["peak_rss_mb"] > 0
    assert set(data["positions"]) == {"0,2", "all"}
    for v in [v for by_chunk in data["positions"].values() for v in by_chunk.values()]:
        assert v["n"] == 1 and v["episodes_per_s"] > 0
        assert v["table_seconds_659_episodes"] == pytest.approx(659 / v["episodes_per_s"])
        # untrained 28x28 Bernoulli model: the NLL per item is positive and finite
        assert 0 < v["mean_nll_nats_last_call"] < 1e4


def test_ns_spike_probe_terms_add_up_to_the_elbo(tmp_path):
    probe = _load("ns_spike_probe")
    torch.manual_seed(0)
    m = build("ns-small", **{**SMALL["ns-small"], "num_z_layers": 1})
    x = (torch.rand(3, 4, 1, 28, 28) < 0.3).float()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[0, 2:] = False
    pyro.set_rng_seed(4)
    terms = probe.elbo_terms(m, x, mask)
    pyro.set_rng_seed(4)  # the same draw of the guide
    loss = Trace_ELBO().loss(m.model, m.guide, x, mask) / mask.sum().item()
    assert terms["rec"] + terms["kl_c"] + terms["kl_z"] == pytest.approx(loss, rel=1e-5)
    assert terms["rec"] > 0 and terms["pz_scale_min"] > 0
    out = tmp_path / "probe.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PPL_FEWSHOT_DATA", None)
    subprocess.run([sys.executable, str(BENCH / "ns_spike_probe.py"), "--model", "ns-small",
                    "--protocol", "glyphs", "--batch-size", "2", "--steps", "6",
                    "--set", "hidden=16", "--set", "channels=4", "--set", "c_dim=6",
                    "--out", str(out)], cwd=ROOT, env=env, check=True, timeout=300,
                   capture_output=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["step"] for r in rows if r["step"] % 5 == 0] == [0, 5]
    assert all(r["loss"] > 0 and r["grad_norm"] > 0 and r["kl_z"] == r["kl_z"] for r in rows)


def test_settings_speed_writes_json(tmp_path):
    bench = _load("settings_speed")
    out = tmp_path / "ss.json"
    res = bench.main(["--model", "vae-small", "--variant", "arch=conv",
                      "--variant", "arch=resnet,z_dim=5", "--batch", "1", "--set-size", "2",
                      "--steps", "3", "--warmup", "0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "settings_speed" and data == json.loads(json.dumps(res))
    conv, res_ = data["variants"]["arch=conv"], data["variants"]["arch=resnet,z_dim=5"]
    assert conv["ratio_to_reference"] == 1.0 and res_["ratio_to_reference"] > 0
    assert conv["n"] == 3 and 0 < conv["q1_ms"] <= conv["median_ms"] <= conv["q3_ms"]
    # the settings reached the model: the residual networks are the smaller ones
    assert res_["parameters"] < conv["parameters"]
    assert bench.settings("a=1,b=x") == {"a": 1, "b": "x"} and bench.settings("") == {}
    # objective options (loss.*) and the sets-of-one layout of the singleton term
    res = bench.main(["--model", "gmn-small", "--base", "z_dim=4,state_dim=8,channels=4,hidden=16",
                      "--variant", "loss.singleton_weight=0",
                      "--variant", "loss.singleton_weight=1",
                      "--variant", "loss.singleton_weight=1,singletons=sets", "--batch", "2",
                      "--set-size", "3", "--steps", "2", "--warmup", "0", "--out", str(out)])
    assert len(res["variants"]) == 3
    with pytest.raises(TypeError):
        bench.main(["--model", "vae-small", "--variant", "loss.no_such_option=1",
                    "--steps", "1", "--warmup", "0", "--out", str(out)])
    with pytest.raises(ValueError, match="singletons"):
        bench.main(["--model", "vae-small", "--variant", "singletons=nope",
                    "--steps", "1", "--warmup", "0", "--out", str(out)])
