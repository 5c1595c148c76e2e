"""benchmarks/gpu_check.py keeps working: its CPU tiny mode end to end, and its failure isolation."""

from __future__ import annotations

import importlib.util
import json
import sys
import time

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def test_tiny_mode_runs_every_section_and_writes_json(gpu_check, tmp_path, capsys):
    out = tmp_path / "results.json"
    code = gpu_check.main(["--tiny", "--json", str(out)])
    table = capsys.readouterr().out
    results = json.loads(out.read_text())
    statuses = {
        name: results[name]["status"] for name in ("env", "overhead", "numerics", "tag", "train", "onnx", "decode")
    }
    assert statuses == dict.fromkeys(statuses, "ok"), {n: results[n].get("error") for n in statuses}
    assert code == 0
    for name in statuses:
        assert f"== {name} " in table

    overhead = results["overhead"]["rows"]
    assert overhead["fp32_ratio"] > 0 and 1.0 < overhead["arithmetic_ratio"] < 1.5
    assert 0 < results["numerics"]["rows"]["bf16_max_abs_diff"] < 0.05
    tag = results["tag"]["rows"]
    assert tag["videos"] == 6 and tag["fp32_failed"] == 0
    assert tag["fp32_pipeline_videos_per_s"] > 0 and tag["fp32_model_alone_videos_per_s"] > 0
    assert tag["decode_alone_videos_per_s"] > 0 and tag["fp32_pipeline_over_model"] > 0
    ratio = tag["fp32_pipeline_videos_per_s"] / tag["fp32_model_alone_videos_per_s"]
    assert tag["fp32_pipeline_over_model"] == pytest.approx(ratio, abs=0.01)  # the ratio is of the two rates shown
    train = results["train"]["rows"]
    for precision in ("fp32", "bf16"):
        assert train[f"{precision}_no_ckpt_loss_went_down"] is True
        assert train[f"{precision}_no_ckpt_step_ms_b4"] > 0 and train[f"{precision}_ckpt_step_ms_b4"] > 0
    decode = results["decode"]["rows"]
    assert decode["cpu_exact_failed"] == decode["cpu_keyframe_failed"] == 0
    assert decode["cpu_exact_clips_per_s"] > 0 and decode["cpu_keyframe_clips_per_s"] > 0
    assert "gpu_torchcodec" in decode or "gpu_torchcodec_clips_per_s" in decode  # measured, or why not
    onnx = results["onnx"]["rows"]
    if "skipped" not in onnx:
        assert onnx["provider"] == "CPUExecutionProvider"
        assert onnx["max_abs_diff_vs_torch_fp32"] < 1e-4


def test_a_failing_section_is_reported_and_the_rest_still_run(gpu_check, tmp_path, monkeypatch, capsys):
    def broken(plan, rows):
        rows["partial"] = 1
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu_check, "section_numerics", broken)
    out = tmp_path / "results.json"
    code = gpu_check.main(["--tiny", "--sections", "numerics,overhead", "--json", str(out)])
    results = json.loads(out.read_text())
    assert code == 1
    assert results["numerics"]["status"] == "failed"
    assert "illegal memory access" in results["numerics"]["error"]
    assert results["numerics"]["rows"] == {"partial": 1}  # what it measured before failing is kept
    assert results["overhead"]["status"] == "ok" and results["overhead"]["rows"]["fp32_ratio"] > 0
    assert "== numerics" in capsys.readouterr().out


def test_a_section_over_its_limit_is_stopped(gpu_check):
    results: dict = {}

    def hangs(rows):
        rows["started"] = True
        while True:
            time.sleep(0.05)

    gpu_check.run_section("stuck", hangs, 0.5, results)
    assert results["stuck"]["status"] == "timeout" and results["stuck"]["rows"] == {"started": True}


def test_existing_json_is_not_overwritten_and_unknown_sections_are_refused(gpu_check, tmp_path):
    existing = tmp_path / "mine.json"
    existing.write_text("keep")
    assert gpu_check.main(["--tiny", "--json", str(existing)]) == 2
    assert existing.read_text() == "keep"
    assert gpu_check.main(["--tiny", "--sections", "nonsense"]) == 2
