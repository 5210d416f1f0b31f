"""Every benchmark script has CleanRL's shape and runs end to end with a tiny budget.

The shape (``benchmarks/cli_args.py``): a docstring, an ``Args`` dataclass with a docstring under each
field parsed by the one helper ``cli_args.parse_args``, ``run`` and ``summarise``; fields several scripts
have are inherited from the base dataclasses of ``cli_args.py``, and no script imports another script
(shared code is in the helper modules). The investigations of ``benchmarks/investigations/`` have the same shape. The runs
are subprocesses, as a user starts them, with ``VASE_BENCH_RESULTS`` pointing at ``tmp_path`` so committed
results are never touched, and check the numbers they write. The cheap ones are in the fast suite; the rest
are ``slow`` (``pytest -m slow tests/test_benchmarks.py``: 12 minutes on 2 shared cores). Scripts that need
the real datasets, MiniWorld's OpenGL or stable-baselines3 skip cleanly without them.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA_DIR, HAVE_DATA

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
HELPERS = (
    "common",
    "cli_args",
    "paper_common",
    "paper_tables",
    "bench3d_common",
    "rl_common",
    "rl_report",
    "rl_methods",
    "cl_metrics",
    "rl_lifelong_report",
    "rl_lifelong_plots",
    "speed_report",
    "wrapper_speed_report",
    "imagination_report",
)
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in HELPERS)
INVESTIGATIONS = sorted(f"investigations/{p.stem}" for p in (BENCH / "investigations").glob("*.py"))
"""One-off investigations (``benchmarks/investigations/``), named by their path under ``benchmarks/``."""
SHARED_EXCEPTIONS = {("speed", "threads")}
"""(script, field) declared by the script although a base of ``cli_args.py`` has that field: speed.py's
``threads`` is the tuple of thread counts it compares, not the measuring process's threads."""


@pytest.fixture(scope="module")
def bench_import() -> Any:
    """Import a benchmark module by name or path under ``benchmarks/`` (``benchmarks/`` on sys.path, as
    when a script runs)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield lambda name: importlib.import_module(name.replace("/", "."))
    finally:
        sys.path.remove(str(BENCH))


def have_gl() -> bool:
    try:
        from vase_rl.envs.world import check_gl

        check_gl()
    except Exception:  # noqa: BLE001 - any failure means no MiniWorld rendering here
        return False
    return True


def have_sb3() -> bool:
    return importlib.util.find_spec("stable_baselines3") is not None


# ------------------------------------------------------------------------------------ the shape
@pytest.mark.parametrize("name", SCRIPTS + INVESTIGATIONS)
def test_benchmark_has_the_cleanrl_shape(name: str, bench_import: Callable[[str], Any]) -> None:
    cli_args = bench_import("cli_args")
    module = bench_import(name)
    assert (module.__doc__ or "").strip(), f"{name} has no docstring"
    assert dataclasses.is_dataclass(module.Args), f"{name}.Args is not a dataclass"
    undocumented = {f.name for f in dataclasses.fields(module.Args)} - set(cli_args.field_docs(module.Args))
    assert not undocumented, f"{name}.Args fields without a docstring: {sorted(undocumented)}"
    assert callable(module.run) and callable(module.summarise) and callable(module.main)
    assert "cli_args.parse_args(Args, __doc__)" in inspect.getsource(module.main)
    assert cli_args.parse_args(module.Args, argv=[]) == module.Args()  # defaults survive the command line
    with pytest.raises(SystemExit) as done:  # --help renders every field's text (a bare "%" broke it)
        cli_args.parse_args(module.Args, module.__doc__, argv=["--help"])
    assert done.value.code == 0


def test_shared_helpers_are_defined_once() -> None:
    """Hardware record, tables, JSON writing, resumable runs and timings live in common.py only, argument
    parsing in cli_args.py only."""
    patterns = (
        r"def hardware|def parse_args|ArgumentParser\(|def markdown_table|def write_json|/proc/cpuinfo"
        r"|def run_pending|def run_path|def load_records|def timed\(|def best_time|def peak\(|ProcessPoolExecutor"
    )
    # cli_args.parse_args: the one ArgumentParser; paper_common.run_all: a pool of RunSpecs (claims, resumption)
    allowed = {"common", "cli_args", "paper_common"}
    for path in [*BENCH.glob("*.py"), *BENCH.glob("investigations/*.py")]:
        if path.stem not in allowed:
            assert not re.findall(patterns, path.read_text()), f"{path.name} has its own copy"


def test_no_script_imports_another_script() -> None:
    """Scripts import the helper modules only; what two scripts share is in a helper module."""
    scripts = set(SCRIPTS) | {Path(i).name for i in INVESTIGATIONS}
    for path in [*BENCH.glob("*.py"), *BENCH.glob("investigations/*.py")]:
        tree = ast.parse(path.read_text())
        imported = {
            a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        imported |= {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not imported & scripts, f"{path.name} imports the script(s) {sorted(imported & scripts)}"


@pytest.mark.parametrize("name", SCRIPTS + INVESTIGATIONS)
def test_shared_fields_come_from_the_common_bases(name: str, bench_import: Callable[[str], Any]) -> None:
    """A field of the run budget or of PPO that a base dataclass of cli_args.py declares (seeds, jobs, threads,
    preset, ppo_*, ...) is inherited from it (a script may re-declare it to change the default), never
    introduced again."""
    cli_args = bench_import("cli_args")
    names = (
        "SummariseArgs",
        "SeedsArgs",
        "JobsArgs",
        "ThreadsArgs",
        "PresetArgs",
        "SequenceArgs",
        "PPOArgs",
        "AgentArgs",
    )
    bases = [getattr(cli_args, n) for n in names]
    shared = {f.name for c in bases for f in dataclasses.fields(c)}
    args = bench_import(name).Args
    for f in dataclasses.fields(args):
        introduced = next(c for c in reversed(args.__mro__) if f.name in vars(c).get("__annotations__", {}))
        if f.name in shared and (name, f.name) not in SHARED_EXCEPTIONS:
            assert introduced in bases, f"{name}.Args.{f.name} is declared in {introduced.__qualname__}"


@pytest.mark.parametrize("name", INVESTIGATIONS)
def test_investigations_write_inside_the_results_folder(
    name: str, bench_import: Callable[[str], Any]
) -> None:
    common, module = bench_import("common"), bench_import(name)
    assert module.OUT.is_relative_to(common.RESULTS), module.OUT
    assert "/tmp" not in (BENCH / f"{name}.py").read_text()


def test_run_pending_saves_each_run_and_names_the_failed_ones(
    tmp_path: Path, bench_import: Callable[[str], Any]
) -> None:
    common = bench_import("common")
    common.write_json(common.run_path(tmp_path, "done", 1), {"kept": True})
    with pytest.raises(SystemExit, match="1 of 2 runs failed: bad seed 1"):
        common.run_pending(run_or_fail, None, ["ok", "bad", "done"], [1], str(tmp_path), jobs=1)
    assert common.load_json(common.run_path(tmp_path, "ok", 1))["method"] == "ok"
    assert not Path(common.run_path(tmp_path, "bad", 1)).exists()
    assert common.load_records(tmp_path)[0] == {"kept": True}
    assert common.load_json(tmp_path / "missing.json", {}) == {}
    assert common.json_once(tmp_path / "once.json", lambda: [1]) == [1]
    assert common.json_once(tmp_path / "once.json", lambda: [2]) == [1]  # made once


def run_or_fail(args: Any, method: str, seed: int) -> dict[str, Any]:
    if method == "bad":
        raise RuntimeError("boom")
    return {"method": method, "seed": seed}


def test_parse_args_reads_fields_docstrings_bools_and_tuples(bench_import: Callable[[str], Any]) -> None:
    cli_args = bench_import("cli_args")
    args = cli_args.parse_args(
        bench_import("rollout_scaling").Args,
        argv=["--workers", "1,2", "4", "--env_cost_ms=0.5", "--preset", "paper"],
    )
    assert (args.workers, args.env_cost_ms, args.preset) == ((1, 2, 4), 0.5, "paper")
    table1 = bench_import("ablation_table1").Args
    assert cli_args.parse_args(table1, argv=["--seeds", "3", "--no-summarise"]).seeds == (3,)
    with pytest.raises(ValueError, match="unknown rows"):
        cli_args.parse_args(table1, argv=["--rows", "XYZ"])
    assert bench_import("dreaming_check").Args().seeds == (100,)  # a subclass's default wins
    assert "validation seed" in cli_args.field_docs(bench_import("dreaming_check").Args)["seeds"]


def test_result_files_are_written_atomically(tmp_path: Path, bench_import: Callable[[str], Any]) -> None:
    import numpy as np

    common = bench_import("common")
    record = {"a": np.float32(1.5), "b": np.arange(2)}
    json_path, md_path = common.write_results(tmp_path / "sub" / "x", record, "# x\n")
    assert json.loads(json_path.read_text()) == {"a": 1.5, "b": [0, 1]}
    assert md_path.read_text() == "# x\n"
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["x.json", "x.md"]  # no temp file left
    hw = common.hardware(extra=1)
    assert hw["extra"] == 1 and hw["cores"] >= 1 and len(hw["load_average"]) == 3 and hw["cpu"]


# ------------------------------------------------------------------------------------ tiny runs
@dataclass(frozen=True)
class Case:
    """One script's tiny run: its arguments ({tmp}, {results} filled in) and what it must have written."""

    script: str
    argv: tuple[str, ...]
    check: Callable[[Path], None]
    needs: tuple[str, ...] = ()
    slow: bool = True
    variant: str = ""
    """Names a script's second tiny run (its test id: ``script-variant``)."""


def load(path: Path) -> Any:
    assert path.exists(), f"{path} was not written"
    return json.loads(path.read_text())


def check_sampler(r: Path) -> None:
    res = load(r / "sampler_speed.json")
    assert [(row["dataset"], row["canvas"]) for row in res["results"]] == [
        ("shapes", 32),
        ("moving-shapes", 32),
        ("shapes", 64),
        ("moving-shapes", 64),
    ]
    assert all(row["images_per_s"] > 0 for row in res["results"])
    assert res["min_images_per_s_at_64"] == min(row["images_per_s"] for row in res["results"][2:])
    assert "| moving-shapes | 64 |" in (r / "sampler_speed.md").read_text()


def check_world(r: Path) -> None:
    res = load(r / "world_speed.json")
    assert [row["level"] for row in res["results"]] == ["outdoor", "indoor"]
    assert all(row["median_steps_per_s"] > 0 and row["steps"] == 10 for row in res["results"])
    assert res["machine"]["gl_renderer"] and res["machine"]["pinned_cores"]


def check_wrapper(r: Path) -> None:
    res = load(r / "wrapper_speed.json")
    assert [(row["preset"], row["sub_envs"]) for row in res["env_speed"]] == [
        ("paper", 1),
        ("paper", 2),
        ("cpu", 1),
        ("cpu", 2),
    ]
    assert all(row["raw"]["wall"] > 0 and row["vec_env_wrapper"]["cpu"] > 0 for row in res["env_speed"])
    assert res["encoder"]["learner_encode_1t"]["wall"] > 0
    assert [row["frames"] for row in res["learning"]] == [16 * 8, 16 * 4]
    assert "## Online learning" in (r / "wrapper_speed.md").read_text()


def check_long_run(r: Path) -> None:
    res = load(r / "long_run.json")
    assert (res["steps_done"], res["steps_per_dataset"]) == (14, 2)
    assert res["stopped_by"] is None and res["nan"]["encode_nonfinite"] == []
    first = {"step": 0, "dataset": "moving-mnist", "env": 0, "reason": "first"}
    assert res["inference"]["allocations"][0] == first
    assert sum(b - a + 1 for a, b, _ in res["inference"]["timeline"]) == 14
    assert "# Long-run stability" in (r / "long_run.md").read_text()


def check_speed(r: Path) -> None:
    res = load(r / "speed.json")
    rows = {row["kind"]: row for row in res["rows"]}
    assert set(rows) == {"plain", "vase", "vase-cheap"}
    assert rows["vase"]["flop_ratio"] > rows["vase-cheap"]["flop_ratio"] > 1.0  # dreaming + scan cost FLOPs
    assert res["peak_rss"]["steps"] == 2 and res["peak_rss"]["peak_rss_mib"] > 0
    assert "| 1 | contiguous | vase |" in (r / "speed.md").read_text()


def check_rollout(r: Path) -> None:
    res = load(r / "rollout_scaling.json")
    # 2 env costs x 2 APIs x (raw, encode, learn) x (in-process, workers), minus gym's learn rows at cost 0
    assert len(res["rows"]) == 2 * 2 * 3 * 2 - 2
    assert all(row["frames_per_s"] > 0 for row in res["rows"])


def check_cpu_preset(r: Path) -> None:
    names = sorted(p.name for p in (r / "cpu_preset").glob("*.json"))
    assert names == [
        "two-sided_gamma1.json",
        "two-sided_gamma100.json",
        "two-sided_gamma8.json",
        "upper_gamma10.json",
    ]
    rec = load(r / "cpu_preset" / "upper_gamma10.json")
    assert rec["steps"] == 2 and 0 <= rec["probe_accuracy"] <= 100 and rec["recon_nll"] > 0
    assert "upper gamma=10 (cpu preset)" in (r / "cpu_preset" / "README.md").read_text()


def check_paper(experiment: str, key: str, md: str) -> Callable[[Path], None]:
    def check(r: Path) -> None:
        rec = load(r / "paper" / experiment / "runs" / f"{key}.json")
        assert rec["spec"]["steps_per_env"] == 4 and rec["n_envs"] >= 1
        assert rec["hardware"]["cpu"] and rec["evaluation"]["datasets"]
        assert (r / "paper" / experiment.split("/")[0] / md).exists()
        if experiment in ("table1", "table3"):  # the forgetting-per-row figure, linked from the table
            assert (
                f"![forgetting per row]({experiment}_forgetting.png)"
                in (r / "paper" / experiment / md).read_text()
            )
            assert (r / "paper" / experiment / f"{experiment}_forgetting.png").exists()

    return check


def check_mask_capacity(r: Path) -> None:
    check_paper("mask_capacity/lambda-1-2", "SDA_dis_s0", "mask_capacity.md")(r)
    md = (r / "paper" / "mask_capacity" / "mask_capacity.md").read_text()
    assert "| lambda-1-2 | 1 evaluation (0) |" in md  # evaluation seeds in rows of their own


def check_fig2(r: Path) -> None:
    for key in ("SDA_dis_s0", "none_dis_s0"):  # the missing Table 1 runs were trained first
        assert load(r / "paper" / "table1" / "runs" / f"{key}.json")["spec"]["steps_per_env"] == 4
    from PIL import Image

    w, h = Image.open(r / "paper" / "fig2" / "fig2_seed0.png").size
    assert w > 1000 and h > 1000  # two columns of three report figures at their own size
    assert "![seed 0](fig2_seed0.png)" in (r / "paper" / "fig2" / "fig2.md").read_text()


def check_imagination(r: Path) -> None:
    recs = {p.stem: load(p) for p in (r / "imagination").glob("*_seed0.json")}
    assert set(recs) == {"baseline_seed0", "imagination_seed0"}
    assert recs["imagination_seed0"]["fraction"] == 0.5 and recs["imagination_seed0"]["agent_loss"]
    assert recs["imagination_seed0"]["target_latents"] == "translation-sensitive"
    assert recs["baseline_seed0"]["target_latents"] is None
    assert "| moving-MNIST acc." in (r / "imagination" / "results.md").read_text()
    world = {p.stem: load(p) for p in (r / "imagination" / "in-world").glob("*_seed0.json")}
    assert set(world) == {"baseline_seed0", "imagination_seed0"}
    stages = world["imagination_seed0"]["stages"]
    # each dataset runs until the learner took 4 train steps: warm-up 64 frames, then one every 32 frames
    assert [(st["env_steps"], st["train_steps"]) for st in stages] == [(64 + 3 * 32, 4)] * 3
    assert 0.0 <= stages[1]["probes"]["class_acc"] <= 100.0 and stages[1]["agent_loss_last"] > 0
    assert 0.0 <= stages[1]["probes"]["class_acc_mlp"] <= 100.0
    assert world["imagination_seed0"]["target_latents"] == "translation-sensitive"
    assert "| mnist | moving-MNIST class acc." in (r / "imagination" / "results.md").read_text()


def check_rl(folder: str, methods: tuple[str, ...], keys: tuple[str, ...]) -> Callable[[Path], None]:
    def check(r: Path) -> None:
        runs = r / folder
        for m in methods:
            rec = load(runs / f"{m}_seed0.json")
            assert all(k in rec for k in keys), sorted(rec)
        assert (
            f"| {methods[0]} |" in (runs.parent / "rl_transfer.md").read_text()
        )  # the table beside the runs

    return check


def check_cross_domain(r: Path) -> None:
    rec = load(r / "3d" / "cross_domain" / "runs" / "vase_seed0.json")
    assert rec["paired"] and rec["learner_steps"] >= 2 * 3
    assert set(rec["eval_after_B"]["probes"]) == {"ridge", "mlp"}
    assert (r / "3d" / "cross_domain" / "cross_domain.md").exists()


TINY_PAPER = (
    "--seeds",
    "0",
    "--steps-per-env",
    "4",
    "--jobs",
    "1",
    "--probe-eval-every",
    "4",
    "--runs-dir",
    "{tmp}/runs",
)
AGENT_TINY = (
    "--seeds",
    "0",
    "--n-envs",
    "2",
    "--ppo-n-steps",
    "32",
    "--ppo-batch-size",
    "32",
    "--ppo-epochs",
    "1",
    "--eval-episodes",
    "2",
    "--jobs",
    "1",
)
"""A PPO agent's tiny budget (``cli_args.AgentArgs`` and the run budget)."""
PPO_TINY = ("--steps-a", "64", "--steps-b", "64", *AGENT_TINY)
CASES = [
    Case(
        "sampler_speed",
        (
            "--seconds",
            "0.05",
            "--datasets",
            "shapes",
            "moving-shapes",
            "--batch-sizes",
            "16",
            "--canvas-sizes",
            "32",
            "64",
        ),
        check_sampler,
        slow=False,
    ),
    Case(
        "world_speed",
        ("--steps", "10", "--repeats", "1", "--msaa-samples", "1", "--cpu", "-1", "--out-dir", "{results}"),
        check_world,
        ("gl",),
        slow=False,
    ),
    Case(
        "wrapper_speed",
        (
            "--repeats",
            "1",
            "--steps",
            "2",
            "--sub-envs",
            "1",
            "2",
            "--encode-batch",
            "8",
            "--learn-steps",
            "8",
            "--encoder-batches",
            "8",
            "--encoder-images",
            "64",
            "--peak-size",
            "64",
            "--ppo-envs",
            "2",
            "--ppo-n-steps",
            "8",
            "--ppo-timesteps",
            "16",
            "--ppo-batch-size",
            "16",
            "--ppo-epochs",
            "1",
        ),
        check_wrapper,
        ("sb3",),
        slow=False,
    ),
    Case(
        "long_run",
        (
            "--steps",
            "14",
            "--warmup",
            "4",
            "--rss-every",
            "2",
            "--probe-every",
            "7",
            "--checkpoint-every",
            "7",
            "--checkpoint",
            "{tmp}/long_run.pt",
        ),
        check_long_run,
        ("data",),
        slow=False,
    ),
    Case(
        "speed",
        (
            "--threads",
            "1",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--layouts",
            "contiguous",
            "--rss-steps",
            "2",
            "--no-explore",
            "--peak-size",
            "64",
        ),
        check_speed,
    ),
    Case(
        "rollout_scaling",
        ("--workers", "1", "--frames", "16", "--repeats", "1", "--env-cost-ms", "0.1"),
        check_rollout,
        ("sb3",),
    ),
    Case(
        "cpu_preset",
        ("--steps", "2", "--probe-train", "128", "--probe-test", "64", "--probe-steps", "3"),
        check_cpu_preset,
        ("data",),
    ),
    Case(
        "ablation_table1",
        ("--rows", "SDA", "--modes", "dis", *TINY_PAPER),
        check_paper("table1", "SDA_dis_s0", "table1.md"),
        ("data",),
    ),
    Case(
        "ablation_table3",
        ("--rows", "-", "--modes", "ent", *TINY_PAPER),
        check_paper("table3", "none_ent_s0", "table3.md"),
        ("data",),
    ),
    Case(
        "five_datasets", TINY_PAPER, check_paper("five_datasets", "SDA_dis_s0", "five_datasets.md"), ("data",)
    ),
    Case(
        "dreaming_check",
        ("--variants", "D_tau8", *TINY_PAPER),
        check_paper("dreaming_check/D_tau8", "D_dis_s0", "dreaming_check.md"),
        ("data",),
    ),
    Case("fig2_side_by_side", TINY_PAPER, check_fig2, ("data",)),
    Case("ambiguity", TINY_PAPER, check_paper("ambiguity", "SDA_dis_s0", "ambiguity.md"), ("data",)),
    Case(
        "anchor",
        ("--variants", "on-switch", *TINY_PAPER),
        check_paper("anchor/on-switch", "SDA_dis_s0", "anchor.md"),
        ("data",),
    ),
    Case(
        "investigations/mask_capacity",
        ("--variants", "lambda-1-2", *TINY_PAPER),
        check_mask_capacity,
        ("data",),
    ),
    Case(
        "imagination",
        (
            "--steps-per-env",
            "4",
            "--seeds",
            "0",
            "--jobs",
            "1",
            "--probe-eval-every",
            "4",
            "--probe-eval-size",
            "50",
            "--world-train-every",
            "32",
            "--world-warmup",
            "64",
            "--world-episode-steps",
            "64",
            "--world-probe-train",
            "200",
            "--world-probe-test",
            "100",
        ),
        check_imagination,
        ("data",),
    ),
    Case(
        "rl_transfer",
        ("--methods", "vase-pick", "pixels", *PPO_TINY, "--adapt-steps", "64", "--drift-frames", "16"),
        check_rl(
            "rl_transfer/runs",
            ("vase-pick", "pixels"),
            (
                "return_a",
                "zero_shot_b",
                "kept_b",
                "fine_tuned_b",
                "zero_shot_b2",
                "a_after_adapt_b",
                "retained_b",
            ),
        ),
        ("data", "sb3"),
    ),
    Case(
        "cross_domain_3d",
        (
            "--methods",
            "vase",
            "--seeds",
            "0",
            "--steps-per-level",
            "3",
            "--train-every",
            "8",
            "--buffer-size",
            "128",
            "--episode-steps",
            "20",
            "--probe-episodes",
            "4",
            "--probe-episode-steps",
            "5",
            "--test-episodes",
            "2",
            "--mlp-steps",
            "5",
            "--figure-columns",
            "2",
            "--jobs",
            "1",
            "--runs-dir",
            "",
        ),
        check_cross_domain,
        ("gl",),
    ),
    Case(
        "rl_transfer_3d",
        ("--methods", "vase", "pixels", *PPO_TINY, "--tensorboard-dir", ""),
        check_rl(
            "3d/rl_transfer/runs", ("vase", "pixels"), ("eval_a", "zero_shot_b", "eval_b", "eval_a_after_b")
        ),
        ("gl", "sb3"),
    ),
]


def check_quality(r: Path) -> None:
    rec = load(r / "representation_quality" / "cpu_mnist_seed0.json")
    assert [p["steps"] for p in rec["curve"]] == [2, 4]
    assert 0.0 <= rec["pixels"]["class"]["mlp"] <= 100.0 and rec["untrained"]["class"]["linear"] >= 0.0
    assert all(p["train_cpu_s"] > 0 for p in rec["curve"])
    text = (r / "representation_quality" / "quality_vs_budget.md").read_text()
    assert "| mnist | class | cpu | 4 |" in text and "| mnist | class | pixels |" in text
    assert (r / "representation_quality" / "quality_vs_budget.png").stat().st_size > 0


CASES.append(
    Case(
        "representation_quality",
        (
            "--datasets",
            "mnist",
            "--variants",
            "cpu",
            "--budgets",
            "2",
            "4",
            "--seeds",
            "0",
            "--train-size",
            "200",
            "--test-size",
            "100",
            "--epochs",
            "2",
        ),
        check_quality,
        ("data",),
    )
)


def check_atari(r: Path) -> None:
    out = r / "atari_probes"
    recs = {rep: load(out / f"{rep}_seed0.json") for rep in ("vase", "entangled", "untrained", "pixels")}
    vase = recs["vase"]
    assert [st["after"] for st in vase["stages"]] == ["pong", "freeway"]
    assert set(vase["stages"][0]["scores"]) == {"pong"} and set(vase["stages"][1]["scores"]) == {
        "pong",
        "freeway",
    }
    assert vase["stages"][-1]["steps"] == 4 and vase["stages"][-1]["train_cpu_s"] > 0
    assert vase["data"]["pong"]["units"] == 6 and vase["data"]["freeway"]["kept"]
    for rec in recs.values():
        for s in rec["stages"][-1]["scores"].values():
            assert all(0.0 <= f <= 1.0 for f in s["f1"].values()) and 0.0 <= s["categories"]["mean"] <= 1.0
    assert recs["pixels"]["stages"][0]["after"] is None
    text = (out / "atari_probes.md").read_text()
    assert "| vase |" in text and "| pixels |" in text and "forgets less than the entangled" in text
    assert (out / "atari_probes.png").stat().st_size > 0


# needs ale-py (the atari extra, installed by `make setup`)
CASES.append(
    Case(
        "atari_probes",
        (
            "--games",
            "pong",
            "freeway",
            "--frames-per-game",
            "120",
            "--segment-frames",
            "20",
            "--steps-per-game",
            "2",
            "--probe-epochs",
            "2",
        ),
        check_atari,
        ("atari",),
    )
)


def check_identity(r: Path) -> None:
    runs = r / "rl_transfer" / "identity"
    for m in ("vase", "pixels"):
        rec = load(runs / f"{m}_seed0.json")
        assert rec["pretrain_frames"] == (64 if m == "vase" else 0) and rec["curve"]
    assert "| vase | 1 | 64 |" in (runs / "rl_identity.md").read_text()
    assert (runs / "rl_identity.png").stat().st_size > 0


CASES.append(
    Case(
        "rl_identity",
        ("--methods", "vase", "pixels", "--steps", "128", "--pretrain-steps", "64", *AGENT_TINY),
        check_identity,
        ("data", "sb3"),
    )
)


def check_lifelong(r: Path) -> None:
    folder = r / "rl_lifelong"
    summary = load(folder / "summary.json")
    assert summary["protocol"]["looks"] == [
        "MovingFashion",
        "MovingMNIST",
        "MovingInverseFashion",
        "MovingShapes",
        "MovingFashion",
    ]
    for m in ("vase", "pixels"):
        s = summary[m]
        assert s["seeds"] == 1 and s["reference_seeds"] == 1
        for key in ("average_performance", "forgetting", "forward_transfer"):
            assert set(s[key]) >= {"mean", "ci90"}, (m, key, s[key])
        assert len(s["forgetting"]["per_look"]) == 5 and s["forgetting"]["per_look"][-1]["mean"] == 0.0
        assert s["cpu_s_per_run"] > 0 and s["cpu_s_per_1k_env_steps"] > 0
        rec = load(folder / "runs" / f"{m}_seed0.json")
        r = rec["R"]  # 5 stages x 5 stage-looks; columns 0 and 4 are the revisited look (same numbers)
        assert (
            len(r) == 5 and all(len(row) == 5 for row in r) and [row[0] for row in r] == [row[4] for row in r]
        )
        assert rec["train_env_steps"] == 5 * 256 and rec["cost"]["wall_s"]["evaluation"] > 0
        refs = sorted(p.name for p in (folder / "references").glob(f"{m}__*_seed100.json"))
        assert len(refs) == 4, refs
    assert summary["vase"]["wall_split_s"]["encode"] > 0 and summary["pixels"]["wall_split_s"]["encode"] == 0
    vase = load(folder / "runs" / "vase_seed0.json")
    last = vase["evaluations"][-1]["drift"]  # every look's stage has ended: each has a drift since then
    assert set(last) == {
        "vase_rl/MovingFashion-v0",
        "vase_rl/MovingMNIST-v0",
        "vase_rl/MovingInverseFashion-v0",
        "vase_rl/MovingShapes-v0",
    } and all(v >= 0 for v in last.values())
    assert vase["evaluations"][0]["drift"] == {}  # before any stage ended
    # 256 env steps per look never fill the learner's 1,024-frame warm-up: nothing trained, nothing moved
    assert vase["learner"][-1]["trained_per_env"] == {} and vase["learner"][-1]["pending_steps"] == 0
    assert vase["learner"][-1]["used_per_env"] == []  # no environment allocated: nothing trained
    assert set(last.values()) == {0.0}
    inferred = vase["learner"][-1]["inferred"]
    assert set(inferred) == {"MovingFashion", "MovingMNIST", "MovingInverseFashion", "MovingShapes"}
    assert all(0 <= v["env"] <= 8 and isinstance(v["allocated"], bool) for v in inferred.values())
    split = vase["attribution"]  # every stage but the last: the two cross evaluations
    assert [a["stage"] for a in split] == [0, 1, 2, 3] and all(
        a["episodes"] == 2 * 2 for a in split
    )  # 2 x --eval-episodes
    assert all(
        isinstance(a[k], float)
        for a in split
        for k in ("policy_then_representation_now", "policy_now_representation_then")
    )
    assert "attribution" not in load(folder / "runs" / "pixels_seed0.json")
    assert len(summary["vase"]["forgetting_split"]) == 4 and summary["pixels"]["forgetting_split"] is None
    md = (folder / "rl_lifelong.md").read_text()
    assert "| vase | 1 (1) |" in md and "| vase | 0 | " in md and "## Whose forgetting" in md
    assert "## Single-look references" in md
    for png in ("R_vase.png", "R_pixels.png", "rl_lifelong_curves.png"):
        assert (folder / png).stat().st_size > 0


def lifelong_argv(steps: int, *extra: str) -> tuple[str, ...]:
    """rl_lifelong's tiny run: vase and pixels, one seed and one reference seed, ``steps`` env steps per
    look, one evaluation inside each stage (half-way: also the forward-transfer window)."""
    half = str(steps // 2)
    return (
        *("--methods", "vase", "pixels", *AGENT_TINY, "--ref-seeds", "100", "--steps-per-look", str(steps)),
        *("--curve-at", half, "--ft-window", half, "--curve-episodes", "2", *extra),
    )


CASES.append(
    Case(
        "rl_lifelong",
        lifelong_argv(256),
        check_lifelong,
        ("data", "sb3"),
    )
)


def check_lifelong_3d(r: Path) -> None:
    """The 3-D variant: RGB MiniWorld looks, the learner built for 3 channels, the WorldConfig overrides kept."""
    folder = r / "rl_lifelong"
    summary = load(folder / "summary.json")
    assert summary["protocol"]["looks"] == ["WorldOutdoor", "WorldIndoor", "WorldOutdoor"]
    for m in ("vase", "pixels"):
        assert summary[m]["seeds"] == 1 and set(summary[m]["average_performance"]) >= {"mean", "ci90"}
        rec = load(folder / "runs" / f"{m}_seed0.json")
        assert len(rec["R"]) == 3 and rec["args"]["world"] == '{"max_episode_steps": 20}'
    vase = load(folder / "runs" / "vase_seed0.json")
    assert vase["vase_config"]["model"]["channels"] == 3
    # --pretrain-frames 1280 at a round every 64: the 1,024-frame warm-up, then 4 rounds; frozen after it
    steps = [stage["learner_steps"] for stage in vase["learner"]]
    assert steps[0] > 0 and steps == [steps[0]] * 3 and vase["learner"][0]["train_steps"] == 0
    text = (folder / "rl_lifelong.md").read_text()
    assert "RGB MiniWorld frames" in text and """--world '{"max_episode_steps": 20}'""" in text
    from vase_rl.core.learner import ContinualLearner  # --save-learner-dir: one checkpoint per stage

    saved = sorted(p.name for p in (r.parent / "learners").glob("*.pt"))
    assert saved == [f"vase_seed0_stage{s}.pt" for s in range(3)]
    assert (
        ContinualLearner.load(str(r.parent / "learners" / saved[-1]), device="cpu").config.model.channels == 3
    )


CASES.append(
    Case(
        "rl_lifelong",
        lifelong_argv(
            128,
            *("--stages", "vase_rl/WorldOutdoor-v0", "vase_rl/WorldIndoor-v0", "vase_rl/WorldOutdoor-v0"),
            *("--world", '{{"max_episode_steps": 20}}'),  # str.format-escaped: {"max_episode_steps": 20}
            *("--save-learner-dir", "{tmp}/learners"),
            *("--pretrain-frames", "1280", "--pretrain-train-every", "64", "--pretrain-freeze"),
        ),
        check_lifelong_3d,
        ("gl", "sb3"),
        variant="3d",
    )
)


def check_exp(r: Path) -> None:
    rec = load(r / "representation_quality" / "investigation" / "tiny.json")
    assert list(rec["curve"]) == ["2", "3"] and rec["curve"]["3"]["recon"] > 0
    assert set(rec["pixels"]["class"]) == {"linear", "mlp"} and "class" in rec["untrained"]


def check_plain(r: Path) -> None:
    rec = load(r / "representation_quality" / "investigation" / "plain_upper_lvb-3.json")
    assert [p["step"] for p in rec["curve"]] == [0, 1, 2] and rec["args"]["logvar_bias"] == -3.0


def check_reuse(r: Path) -> None:
    rec = load(r / "representation_quality" / "investigation" / "reuse_tiny.json")
    assert rec["n_envs"] >= 1 and rec["log"][0]["reason"] == "first"
    assert set(rec["corr"]) == {"moving-fashion", "moving-inverse-fashion"}
    assert {(t["factor"], t["a"]) for t in rec["transfer"]} == {
        (f, d) for f in ("position", "class") for d in ("moving-fashion", "moving-inverse-fashion")
    }


def check_world_target_probe(r: Path) -> None:
    folder = r / "rl_lifelong_3d" / "target_probe"
    rec = load(folder / "runs" / "vase-cmax100_seed0.json")
    assert set(rec["scores"]) == {"pixels", "untrained", "outdoor3", "step2"}
    assert rec["envs_before"] >= 1 and rec["envs"] >= rec["envs_before"] and len(rec["used"]) == rec["envs"]
    for rep in rec["scores"].values():
        assert set(rep) == {"linear", "mlp"}
        assert all(0.0 <= p["in_view_acc"] <= 100.0 and p["target"] <= 1.0 for p in rep.values())
    assert rec["frames"]["probe_test"] > 0 and 0.0 <= rec["in_view_fraction"] <= 1.0
    md = (folder / "target_probe.md").read_text()
    assert (
        "# Where is the target? Probes of 3-D indoor frames" in md
        and "| vase-cmax100 | outdoor3 | mlp | 1 |" in md
    )
    assert "Before this level the learner trained 3 steps on random-policy outdoor" in md
    assert (folder / "target_probe.png").stat().st_size > 0


def check_landscape(r: Path) -> None:
    rec = load(r / "imagination" / "landscape" / "landscape.json")
    assert set(rec["looks"]) == {"moving-fashion", "mnist"} and len(rec["translations"]) == 9
    for v in rec["looks"].values():
        assert len(v["rows"]) == 4 and all(row["oracle"] <= row["best_constant"] + 1e-4 for row in v["rows"])
        assert all(row["best_constant"] <= row["at_zero"] + 1e-4 for row in v["rows"])
    assert "| moving-fashion |" in (r / "imagination" / "landscape" / "landscape.md").read_text()


def check_readout_retention(r: Path) -> None:
    rec = load(r / "rl_transfer" / "readout_retention" / "runs" / "on-switch+pick_seed0.json")
    assert set(rec["emissions"]) == {"mu", "used", "masked"} and rec["envs"] >= 1
    assert all(e["before"] > -2.0 and e["drift"] >= 0.0 for e in rec["emissions"].values())
    assert (
        "| on-switch+pick | mu | 1 |"
        in (r / "rl_transfer" / "readout_retention" / "readout_retention.md").read_text()
    )


TINY_PROBE = ("--probe-train", "100", "--probe-test", "50", "--probe-epochs", "1")
CASES += [
    Case(
        "investigations/exp",
        (
            "--name",
            "tiny",
            "--steps",
            "3",
            "--checkpoints",
            "2",
            "--refs",
            "--probes",
            "linear",
            "mlp",
            *TINY_PROBE,
        ),
        check_exp,
        ("data",),
    ),
    Case(
        "investigations/plain",
        ("--steps", "3", "--print-every", "1", "--mode", "upper", "--ramp", "1", "--logvar-bias=-3"),
        check_plain,
        ("data",),
    ),
    Case(
        "investigations/imagination_landscape",
        ("--steps", "2", "--frames", "8", "--grid", "3"),
        check_landscape,
        ("data",),
    ),
    Case(
        "investigations/readout_retention",
        (
            "--steps-a",
            "2",
            "--steps-b",
            "2",
            "--episodes",
            "2",
            "--seeds",
            "0",
            "--methods",
            "on-switch+pick",
        ),
        check_readout_retention,
        ("data",),
    ),
    Case(
        "investigations/world_target_probe",
        (
            "--pool-episodes",
            "3",
            "--probe-episodes",
            "6",
            "--test-episodes",
            "2",
            "--episode-steps",
            "8",
            "--checkpoints",
            "2",
            "--level",
            "indoor",
            "--before",
            "outdoor",
            "--before-steps",
            "3",
            "--seeds",
            "0",
            "--methods",
            "vase-cmax100",
        ),
        check_world_target_probe,
        ("gl",),
    ),
    Case(
        "investigations/reuse",
        ("--name", "tiny", "--steps-a", "2", "--steps-b", "2", *TINY_PROBE),
        check_reuse,
        ("data",),
    ),
]


def test_every_script_has_a_tiny_run() -> None:
    assert sorted({c.script for c in CASES}) == sorted(SCRIPTS + INVESTIGATIONS)


def skip_reason(needs: tuple[str, ...]) -> str | None:
    if "data" in needs and not HAVE_DATA:
        return f"real data not found in {DATA_DIR}: set VASE_DATA_DIR"
    if "gl" in needs and not have_gl():
        return "MiniWorld cannot render here (no OpenGL)"
    if "atari" in needs and importlib.util.find_spec("ale_py") is None:
        return "ale-py is not installed (pip install -e .[atari])"
    if "sb3" in needs and not have_sb3():
        return "stable-baselines3 is not installed (pip install -e .[sb3])"
    return None


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id="-".join(filter(None, (c.script, c.variant))), marks=[pytest.mark.slow] if c.slow else []
        )
        for c in CASES
    ],
)
def test_benchmark_runs_with_a_tiny_budget(case: Case, tmp_path: Path) -> None:
    reason = skip_reason(case.needs)
    if reason:
        pytest.skip(reason)
    results = tmp_path / "results"
    argv = [a.format(tmp=tmp_path, results=results) for a in case.argv]
    env = {
        **os.environ,
        "VASE_BENCH_RESULTS": str(results),
        "VASE_DATA_DIR": DATA_DIR,
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{case.script}.py"), *argv],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{case.script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    case.check(results)


def test_world_overrides_reach_miniworld_levels_only(bench_import: Any) -> None:
    """``--world`` (3-D benchmarks) sets WorldConfig fields of the embedded MiniWorld levels, passes a call's
    own kwargs on top, and leaves DM Lab levels alone; a non-object JSON is refused by name."""
    b3d = bench_import("bench3d_common")
    args = b3d.LevelsArgs(world='{"arena_size": 7, "num_obstacles": 2}')
    env_id, kw = args.level_spec("outdoor", max_episode_steps=50)
    assert env_id == "vase_rl/WorldOutdoor-v0"
    assert kw == {"arena_size": 7, "num_obstacles": 2, "max_episode_steps": 50}
    assert "arena_size" not in args.level_spec("contributed/dmlab30/natlab_varying_map_randomized")[1]
    with pytest.raises(ValueError, match="--world must be a JSON object"):
        b3d.LevelsArgs(world="[7]").level_spec("indoor")


def test_imagination_row_turns_environment_inference_off_and_bad_rows_are_refused(bench_import: Any) -> None:
    """``--row DA`` (the control whose conditions cannot infer different environments): one environment."""
    im = bench_import("imagination")
    assert im.learner_config(im.Args(), 3).ablation.infer_env is True
    config = im.learner_config(im.Args(row="DA"), 3)
    assert (config.ablation.infer_env, config.ablation.dream, config.ablation.mask, config.seed) == (
        False,
        True,
        True,
        3,
    )
    with pytest.raises(ValueError, match="XYZ"):
        im.Args(row="XYZ")


def test_imagination_report_reads_a_field_added_after_a_run_at_its_default(
    bench_import: Any, tmp_path: Path
) -> None:
    """A run whose config.json predates a config field (here ``young_decoder_release_steps``) used the code
    that field's default reproduces: not a different config. A changed value is."""
    from vase_rl.core.config import get_preset

    report = bench_import("imagination_report")
    now = get_preset("cpu").to_dict()
    old = json.loads(json.dumps(now))
    del old["model"]["young_decoder_release_steps"]
    changed = json.loads(json.dumps(now))
    changed["loss"]["gamma"] = 5.0
    records = [
        {"condition": "baseline", "seed": 0, "code": "a"},
        {"condition": "imagination", "seed": 0, "code": "a"},
    ]
    for configs, same in (((now, old), True), ((now, changed), False)):
        for record, config in zip(records, configs, strict=True):
            run = tmp_path / str(same) / "runs" / report.run_name(record["condition"], record["seed"])
            run.mkdir(parents=True)
            (run / "config.json").write_text(json.dumps({"vase": config}))
        assert report._run_configs(tmp_path / str(same), records)[1] is same


def test_rl_lifelong_shares_references_across_orders_of_the_same_looks(
    bench_import: Any, tmp_path: Path
) -> None:
    """A reference trains one look alone, so a reordered sequence reuses the references; never the
    sequence runs."""
    ll = bench_import("rl_lifelong")
    looks = ("vase_rl/MovingFashion-v0", "vase_rl/MovingInverseFashion-v0")
    runs, refs = tmp_path / "runs", tmp_path / "refs"
    first = ll.Args(stages=looks, out_dir=str(runs), ref_dir=str(refs))
    for folder, name in ((runs, "pixels_seed0.json"), (refs, "pixels__MovingFashion_seed100.json")):
        ll.common.write_json(
            folder / name, {"args": dataclasses.asdict(first), "method": "pixels", "seed": 0}
        )
    for folder in (runs, tmp_path / "other"):  # the random policy's returns, as a finished start leaves them
        ll.common.write_json(folder / "random.json", {})
    ll.start(first)  # same order: both folders accepted
    reordered = dataclasses.replace(first, stages=looks[::-1], out_dir=str(tmp_path / "other"))
    ll.start(reordered)  # another order: the references are shared
    with pytest.raises(SystemExit, match=r"pixels_seed0.json was run with other settings \(stages\)"):
        ll.start(dataclasses.replace(reordered, out_dir=str(runs)))


def test_offline_probe_table_reads_each_stage_and_the_references_of_distinct_seeds(bench_import: Any) -> None:
    """Table 1's offline-probe table: the MLP accuracy of each stage's dataset, its mean, mean +- std over
    seeds per row, and the untrained / pixels references counted once per seed."""
    pt = bench_import("paper_tables")

    def rec(row: str, seed: int, vase: tuple[float, float], ref: float) -> dict[str, Any]:
        stages = [
            {"dataset": d, "scores": {w: {"class": {"mlp": v, "linear": 0.0}} for w, v in scores.items()}}
            for d, scores in (
                ("a", {"vase": vase[0], "untrained": ref, "pixels": 90.0}),
                ("b", {"vase": vase[1], "untrained": ref, "pixels": 80.0}),
            )
        ]
        return {
            "spec": {"row": row, "mode": "dis", "seed": seed},
            "evaluation": {"quality": {"stages": stages}},
        }

    runs = [
        rec("SDA", 0, (60.0, 80.0), 40.0),
        rec("SDA", 1, (62.0, 82.0), 42.0),
        rec("-", 0, (50.0, 70.0), 40.0),
    ]
    lines = pt.offline_probe_table(runs).splitlines()
    assert "| VASE (SDA) | disentangled | 2 | 61.0 (±1.4) | 81.0 (±1.4) | 71.0 (±1.4) |" in lines
    assert "| - | disentangled | 1 | 50.0 (±0.0) | 70.0 (±0.0) | 60.0 (±0.0) |" in lines
    # seed 0 appears in two rows but counts once: untrained over seeds 0 and 1
    assert "| untrained encoder | reference | 2 | 41.0 (±1.4) | 41.0 (±1.4) | 41.0 (±1.4) |" in lines
    assert "| raw pixels | reference | 2 | 90.0 (±0.0) | 80.0 (±0.0) | 85.0 (±0.0) |" in lines
    assert pt.offline_probe_table([{"evaluation": {"quality": None}}]) == "_no run carries offline probes_"
