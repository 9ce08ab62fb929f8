"""The benchmark scripts run end to end on tiny settings and write the JSON they document."""

import json
import sys
from pathlib import Path

import pytest

from condflow import set_finite_checks

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def importable():
    """The scripts import their helpers from ``benchmarks/`` and switch the finiteness checks
    off for timing; both are undone after each test."""
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))
    set_finite_checks(True)


def test_bench_flow_times_every_implementation_and_checks_every_path(tmp_path):
    import bench_flow

    out = tmp_path / "flow.json"
    bench_flow.main(["--flows", "lifting", "--ops", "sample_and_log_prob,mode", "--B", "2",
                     "--n", "3", "--repeats", "1", "--budget", "0", "--mm-rows", "64",
                     "--device", "cpu", "--json", str(out)])
    result = json.loads(out.read_text())
    rows = result["results"]
    assert {(r["impl"], r["path"]) for r in rows} == {
        ("condflow", "fp32"), ("condflow", "bf16"), ("nflows", "fp32"), ("zuko", "fp32")}
    assert all(r["ms"] > 0 and r["gflop"] > 0 for r in rows)
    for key, err in result["checks"].items():
        assert err <= result["tolerance"].get(key.split("/")[-1], 1e-4), key
    # condflow computes the context part of each coupling net once per context, not per sample.
    flops = {r["impl"]: r["gflop"] for r in rows
             if r["op"] == "sample_and_log_prob" and r["path"] == "fp32"}
    assert flops["condflow"] < flops["nflows"] == flops["zuko"]
    mode = {r["impl"]: r["gflop"] for r in rows if r["op"] == "mode" and r["path"] == "fp32"}
    assert mode["condflow"] == pytest.approx(mode["nflows"])


def test_bench_inference_reports_throughput_and_error(tmp_path):
    import bench_inference

    out = tmp_path / "inference.json"
    bench_inference.main(["--models", "lifting", "--batch", "2", "--repeats", "1",
                          "--budget", "0", "--device", "cpu", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert {r["path"] for r in rows} == {"fp32", "bf16"}
    for r in rows:
        assert r["items_per_s"] > 0 and r["gflop_per_item"] > 0 and r["within_tolerance"]
    assert next(r for r in rows if r["path"] == "fp32")["rel_err"] < 1e-5


def test_bench_fitting_traces_smplify_and_every_lever(tmp_path):
    import bench_fitting

    out = tmp_path / "fitting.json"
    levers = ["reference", "cache+fixed", "bf16", "lm"]
    bench_fitting.main(["--batch", "1", "--iters", "3", "--repeats", "1", "--gmm-components",
                        "2", "--gmm-samples", "500", "--levers", ",".join(levers),
                        "--lm-iters", "2",
                        "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = report["results"]
    assert [r["method"] for r in rows] == [bench_fitting.SMPLIFY, *levers]
    assert {"load_before", "load_after", "date"} <= set(report["machine"])
    for r in rows:
        trace = r["trace_seconds_keypoint_energy"]
        cap = {"bf16": 6, "lm": 2 + 3}.get(r["method"], 3)  # two phases, up to 3 + 3 or 2 + 3
        assert 1 <= len(trace) == r["iterations"] <= cap
        assert all(b[0] >= a[0] for a, b in zip(trace, trace[1:], strict=False))
        assert trace[-1][1] == pytest.approx(r["final_keypoint_energy"], rel=1e-5)
        assert r["mpjpe_mm"] > r["pa_mpjpe_mm"] > 0
        assert r["smplify_final_keypoint_energy"] == rows[0]["final_keypoint_energy"]
    assert rows[0]["seconds_to_smplify_final"] is not None  # its own final, by definition
    assert rows[1]["flow_calls"] > rows[1]["iterations"] and rows[1]["flow_rows"] > 0
    # Each lever's ratio is to the SMPLify fits timed right before and after it.
    for r in rows[1:]:
        before, after = r["smplify_seconds_adjacent"]
        if r["seconds_to_smplify_final"] is not None:
            assert r["smplify_final_over_smplify_converge"] == pytest.approx(
                r["seconds_to_smplify_final"] / ((before + after) / 2))
    with pytest.raises(SystemExit, match="--levers: unknown lever 'newton'"):
        bench_fitting.main(["--levers", "cache+newton"])
    with pytest.raises(SystemExit, match="--seeds: expected a count >= 1"):
        bench_fitting.main(["--seeds", "0"])


def test_bench_fitting_summary_over_seeds():
    import bench_fitting

    def row(method, ratio, mpjpe):
        return {"batch": 1, "method": method, "smplify_final_over_smplify_converge": ratio,
                "final_objective": 2.0 * mpjpe, "mpjpe_mm": mpjpe, "pa_mpjpe_mm": mpjpe / 2}

    table = bench_fitting.summary([row("a", 0.2, 10.0), row("a", 0.5, 20.0),
                                   row("a", 0.3, 90.0), row("b", None, 40.0)]).splitlines()
    assert table[2] == "| 1 | a | 3 | 0.30 (0.20–0.50) | 2/3 | 40.00 / 80.00 | 40.0 / 20.0 |"
    assert table[3] == "| 1 | b | 1 | not reached | 0/1 | 80.00 / 80.00 | 40.0 / 20.0 |"


def test_ring_tails_reports_every_variant(tmp_path):
    import ring_tails

    out = tmp_path / "ring.json"
    ring_tails.main(["--variants", "default,shift_bound=1", "--steps", "3", "--hidden", "8",
                     "--samples", "20", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["default", "shift_bound=1"]
    for r in rows:
        assert 0 <= r["tail_fraction"] <= 1 and r["max_radius"] > 0
        assert len(r["actnorm_scales"]) == 4
    with pytest.raises(SystemExit):
        ring_tails.main(["--variants", "nonsense", "--json", str(out)])


def _fast_dev_checkpoint(tmp_path, config: str, *sets: str) -> str:
    from condflow.cli import main

    out = tmp_path / config / "_".join(s.split("=")[-1] for s in sets)
    args = ["train", config, "--fast-dev-run", "--no-progress", "--set", f"output_dir={out}"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return str(out / "fast_dev_run" / "checkpoints" / "last.pt")


@pytest.mark.parametrize(("config", "people", "views"),
                         [("lifting", 6, 3), ("image_to_skeleton", 2, 2)])
def test_table4_fuses_calibrated_views(tmp_path, config, people, views):
    import fitting_tables

    ckpt = _fast_dev_checkpoint(tmp_path, config)
    out = tmp_path / "t4.json"
    fitting_tables.main(["table4", "--task", config, "--checkpoint", ckpt, "--people",
                         str(people), "--views", str(views), "--iters", "20", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["table"]) == {"single view (mode)", "mean of the views' modes",
                                    "fusion (product of densities)"}
    for row in result["table"].values():
        e = row["all views"]
        assert 0 < e["pa_mpjpe"] <= e["mpjpe"] + 1e-6
    assert result["people"] == people and result["views"] == views
    assert 0 <= result["fusion"]["converged"] <= 1


def test_mesh_orientation_splits_the_gap(tmp_path):
    import mesh_orientation

    flow = _fast_dev_checkpoint(tmp_path, "mesh_recovery")
    regression = _fast_dev_checkpoint(tmp_path, "mesh_recovery", "model.kind=regression")
    out = tmp_path / "orient.json"
    mesh_orientation.main(["--flow", flow, "--regression", regression, "--samples", "3",
                           "--out", str(out)])
    result = json.loads(out.read_text())
    f, r = result["summary"]["flow mode"], result["summary"]["regression"]
    assert 0 <= f["median_angle_deg"] <= 180 and 0 <= r["share_over_135_deg"] <= 1
    assert result["mpjpe_gap_mm"] == pytest.approx(f["mpjpe"] - r["mpjpe"], rel=1e-4)
    assert 0 <= result["share_no_sample_within_90_deg"] <= 1
