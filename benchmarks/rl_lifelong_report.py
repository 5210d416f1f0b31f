"""The life-long RL benchmark's summary (``benchmarks/rl_lifelong.py`` runs, this module reports): Continual
World's metrics over the run records (``cl_metrics``), ``summary.json`` and the markdown table, with the
figures of ``rl_lifelong_plots.py``; and the naming of reference runs both share (looks are named by
``rl_common.short``). The protocol and the metrics' definitions are in
``rl_lifelong.py``'s docstring."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import common
import numpy as np
import rl_common as rlc
import rl_lifelong_plots as plots
import rl_methods as rlm
import rl_report
from cl_metrics import (
    CONFIDENCE,
    average_performance,
    before,
    bootstrap_ci,
    forgetting,
    forward_transfer,
    normalise,
    stage_auc,
    stage_points,
)
from rl_common import looks, short

SEP = "__"
"""Separates the method from the look in a reference run's name (``vase__MovingFashion``)."""


def ref_key(method: str, env_id: str) -> str:
    """A reference run's name: ``<method>__<look>``."""
    return f"{method}{SEP}{short(env_id)}"


# ---------------------------------------------------------------------------------- summary
def finite(x: Any) -> Any:
    """``x`` as a float, lists of floats, with NaN as None (JSON null)."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return [finite(v) for v in x]
    return None if x is None or not np.isfinite(x) else float(x)


def entry(point: Any, ci: tuple[Any, Any]) -> dict[str, Any]:
    """``{"mean": m, "ci90": [lo, hi]}`` (None where undefined)."""
    lo, hi = finite(ci[0]), finite(ci[1])
    return {"mean": finite(point), "ci90": None if lo is None or hi is None else [lo, hi]}


def reference_arrays(
    refs: list[dict[str, Any]], stages: list[str], window: int
) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """A method's references on the looks of ``stages``, restricted to the seeds every look has: final
    returns (m, T) and AUCs over the first ``window`` steps (m, T) in stage order, and those seeds; None if
    a look has no reference."""
    by_look = {e: {r["seed"]: r for r in refs if r["look"] == e} for e in looks(stages)}
    seeds = sorted(set.intersection(*(set(v) for v in by_look.values())))
    if not seeds:
        return None
    finals = np.array([[by_look[e][s]["final"] for e in stages] for s in seeds], dtype=float)
    aucs = np.array([[stage_auc(by_look[e][s], 0, window) for e in stages] for s in seeds], dtype=float)
    return finals, aucs, seeds


def method_summary(
    records: list[dict[str, Any]], refs: list[dict[str, Any]], random: dict[str, float], n_boot: int
) -> dict[str, Any]:
    """The metrics of one method (``records``: its sequence runs, ``refs``: its reference runs)."""
    stages = records[0]["stages"]
    raw = np.array([r["R"] for r in records], dtype=float)  # (n, T, T)
    out: dict[str, Any] = {"seeds": len(records), "R_raw_mean": finite(raw.mean(0))}
    out.update(cost_summary(records, refs))
    window = records[0]["args"]["ft_window"]
    ref = reference_arrays(refs, stages, window)
    if ref is None:
        nothing = {"mean": None, "ci90": None}
        return {
            **out,
            "reference_seeds": 0,
            "average_performance": nothing,
            "forgetting": nothing,
            "forward_transfer": nothing,
            "note": "no reference runs for every look yet",
        }
    finals, ref_auc, ref_seeds = ref
    rand = np.array([random[e] for e in stages], dtype=float)
    top = finals.mean(0)
    r = normalise(raw, rand, top)
    auc = normalise(
        np.array([[stage_auc(x, i, window) for i in range(len(stages))] for x in records]), rand, top
    )
    auc_ref = normalise(ref_auc, rand, top)  # (m, T)
    ap, fg = average_performance(r), forgetting(r)
    ft = forward_transfer(auc, auc_ref)
    ci_ap = bootstrap_ci(lambda x: x.mean(1), [ap], n_boot)
    ci_fg = bootstrap_ci(lambda x: x.mean(1), [fg], n_boot)  # (T,) per stage
    ci_fg_mean = bootstrap_ci(lambda x: x.mean(1).mean(-1), [fg], n_boot)
    ci_ft = bootstrap_ci(forward_transfer, [auc, auc_ref], n_boot)
    ci_ft_mean = bootstrap_ci(lambda x, y: forward_transfer(x, y).mean(-1), [auc, auc_ref], n_boot)
    zero = normalise(np.array([[before(x, i) for i in range(len(stages))] for x in records]), rand, top)
    ci_zero = bootstrap_ci(lambda x: x.mean(1), [zero], n_boot)

    def per_stage(values: np.ndarray, ci: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
        return [
            {"stage": i, "look": short(e), **entry(values[i], (ci[0][i], ci[1][i]))}
            for i, e in enumerate(stages)
        ]

    return {
        **out,
        "reference_seeds": len(ref_seeds),
        "average_performance": entry(ap.mean(), ci_ap),
        "forgetting": {**entry(fg.mean(), ci_fg_mean), "per_look": per_stage(fg.mean(0), ci_fg)},
        "forward_transfer": {
            **entry(ft.mean(), ci_ft_mean),
            "per_look": per_stage(ft, ci_ft),
            "window_env_steps": window,
            "auc": finite(auc.mean(0)),
            "auc_reference": finite(auc_ref.mean(0)),
        },
        "zero_shot": {"per_look": per_stage(zero.mean(0), ci_zero)},
        "revisits": revisits(records, stages, rand, top, n_boot),
        "forgetting_split": forgetting_split(records, r, rand, top, n_boot),
        "R_normalised_mean": finite(r.mean(0)),
        "reference_final_raw": finite(top),
    }


SPLIT = ("policy_then_representation_now", "policy_now_representation_then")
"""The two cross evaluations of ``rl_lifelong.ForgettingSplit``."""


def forgetting_split(
    records: list[dict[str, Any]], r: np.ndarray, rand: np.ndarray, top: np.ndarray, n_boot: int
) -> list[dict[str, Any]] | None:
    """Per stage but the last (the runs that have ``attribution``): the normalised return on its look at the
    end of its stage (``own``), at the end of the sequence (``final``) and the two cross evaluations, mean
    [90% interval] over seeds. None when no run has them."""
    with_split = [k for k, x in enumerate(records) if x.get("attribution")]
    if not with_split:
        return None
    t = len(records[0]["stages"])
    rows = []
    for i in range(t - 1):
        cols = {
            "own": r[with_split, i, i],
            "final": r[with_split, t - 1, i],
            **{
                key: normalise(
                    np.array([records[k]["attribution"][i][key] for k in with_split]), rand[i], top[i]
                )
                for key in SPLIT
            },
        }
        row: dict[str, Any] = {"stage": i, "look": short(records[0]["stages"][i]), "seeds": len(with_split)}
        for key, v in cols.items():
            row[key] = entry(v.mean(), bootstrap_ci(lambda x: x.mean(1), [v], n_boot))
        rows.append(row)
    return rows


def revisits(
    records: list[dict[str, Any]], stages: list[str], rand: np.ndarray, top: np.ndarray, n_boot: int
) -> list[dict[str, Any]]:
    """Each stage whose look was seen before: the normalised return at its first evaluation point (inside
    it), beside the first visit's first point, and its zero-shot return just before it."""
    out = []
    for i, env_id in enumerate(stages):
        first = stages.index(env_id)
        if first == i:
            continue
        values = {
            "first_eval": [stage_points(x["evaluations"], i, env_id)[0] for x in records],
            "first_visit_first_eval": [stage_points(x["evaluations"], first, env_id)[0] for x in records],
            "zero_shot": [before(x, i) for x in records],
        }
        row: dict[str, Any] = {"stage": i, "look": short(env_id), "first_visit_stage": first}
        for name, v in values.items():
            norm = normalise(np.array(v), rand[i], top[i])
            row[name] = entry(norm.mean(), bootstrap_ci(lambda x: x.mean(1), [norm], n_boot))
        out.append(row)
    return out


def cost_summary(records: list[dict[str, Any]], refs: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU seconds per sequence run, per 1,000 of its env steps, per reference run; the wall-time split."""
    cpu = np.array([r["cpu_s"] for r in records])
    steps = np.array([r["train_env_steps"] for r in records])
    parts = {
        k: float(np.mean([r["cost"]["wall_s"][k] for r in records])) for k in records[0]["cost"]["wall_s"]
    }
    wall = float(np.mean([r["wall_s"] for r in records]))
    return {
        "cpu_s_per_run": float(cpu.mean()),
        "cpu_s_per_1k_env_steps": float((cpu / steps).mean() * 1000),
        "reference_cpu_s_per_run": float(np.mean([r["cpu_s"] for r in refs])) if refs else None,
        "wall_split_s": parts,
        "wall_split_fraction": {k: v / wall for k, v in parts.items()},
    }


def load_references(ref_dir: str) -> list[dict[str, Any]]:
    """Every finished reference run's JSON in ``ref_dir``."""
    return [r for r in common.load_records(ref_dir) if r.get("kind") == "reference"]


def summarise(args: Any) -> str:
    """summary.json, rl_lifelong.md, the R heatmaps and the curves, from the run JSONs."""
    records = [r for r in common.load_records(args.out_dir) if r.get("kind") == "sequence"]
    by_method = common.by_method(records, rlm.ALL_METHODS)
    refs = load_references(args.ref_dir)
    random = common.load_json(Path(args.out_dir) / "random.json", {})
    first = records or refs  # a folder of references alone takes its protocol from them
    a = first[0]["args"] if first else dataclasses.asdict(args)
    stages = list(a["stages"])
    summary: dict[str, Any] = {
        "protocol": {
            "stages": stages,
            "looks": [short(e) for e in stages],
            "R_layout": "R[i][j]: return on stage j's look at the end of stage i (stages x stages)",
            "steps_per_look": a["steps_per_look"],
            "eval_episodes": a["eval_episodes"],
            "curve_at": a["curve_at"],
            "ft_window": a["ft_window"],
            "curve_episodes": a["curve_episodes"],
            "random": random,
            "confidence": CONFIDENCE,
            "bootstrap": args.bootstrap,
        }
    }
    for m, rs in by_method.items():
        summary[m] = method_summary(rs, [r for r in refs if r["method"] == m], random, args.bootstrap)
    folder = Path(args.out_dir).parent
    common.write_json(folder / "summary.json", summary)
    plots.plot_matrices(summary, by_method, folder)
    if by_method:  # a folder of references alone has no sequence to draw
        plots.plot_curves(by_method, refs, random, folder / "rl_lifelong_curves.png")
    text = markdown(summary, by_method, a, budget_flags(args, a), refs)
    common.write_text(folder / "rl_lifelong.md", text)
    return text


def cell(e: dict[str, Any] | None, digits: int = 2) -> str:
    """``m [lo, hi]`` of an :func:`entry` ('-' when undefined)."""
    if not e or e.get("mean") is None:
        return "-"
    ci = e.get("ci90")
    return f"{e['mean']:.{digits}f}" + ("" if not ci else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")


def frames(a: dict[str, Any]) -> str:
    """What the agents see, from a run's args: the sprite canvas, or the MiniWorld frames and the
    ``WorldConfig`` overrides."""
    if not any("World" in e for e in a["stages"]):
        return f"{a['canvas_size']}x{a['canvas_size']} canvas"
    return f"64x64 RGB MiniWorld frames (VASE: area-resized to 32x32), WorldConfig overrides {a.get('world', '{}')}"


def budget_flags(args: Any, a: dict[str, Any]) -> str:
    """The command-line flags of the runs' budget that differ from the script's defaults (and the folders),
    so the report's command reproduces them: e.g. `` --train-every 64 --out-dir ...``."""
    out = []
    for f in dataclasses.fields(args):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = a.get(f.name, default)
        if f.name in ("out_dir", "ref_dir"):  # this summary's folders, relative to the repository
            value, default = (
                os.path.relpath(Path(v).resolve(), common.REPO) for v in (getattr(args, f.name), default)
            )
        elif f.name in rlc.RUN_FIELDS or f.name in ("kinds", "bootstrap", "ref_seeds"):
            continue
        if (tuple(value) if isinstance(value, list) else value) != default:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            shown = f"'{shown}'" if f.name == "world" else shown
            flag = f.name.replace("_", "-")
            if isinstance(value, bool):  # argparse's BooleanOptionalAction: --flag / --no-flag
                out.append(f" --{flag}" if value else f" --no-{flag}")
            else:
                out.append(f" --{flag} {shown}")
    return "".join(out)


def raw_rows(by_method: dict[str, list[dict[str, Any]]], stages: list[str]) -> list[list[str]]:
    """Per method and stage: each look's raw return at the end of the stage (R's row), the mean over seeds
    and each seed's value in seed order -- the numbers the normalised metrics start from."""
    first = [stages.index(e) for e in looks(stages)]
    rows = []
    for m, rs in by_method.items():
        rs = sorted(rs, key=lambda r: int(r["seed"]))
        for i, env_id in enumerate(stages):
            cells = []
            for j in first:
                v = [float(r["R"][i][j]) for r in rs]
                cells.append(f"{np.mean(v):.2f} ({' / '.join(f'{x:.2f}' for x in v)})")
            rows.append([m, f"{i} ({short(env_id)})", *cells])
    return rows


def reference_rows(refs: list[dict[str, Any]]) -> list[list[str]]:
    """Per (method, look) of the single-look references: seeds, each seed's final raw return, their mean."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(refs, key=lambda r: (r["method"], r["look"], int(r["seed"]))):
        groups.setdefault((r["method"], r["look"]), []).append(r)
    return [
        [
            m,
            short(look),
            " ".join(str(r["seed"]) for r in rs),
            " / ".join(f"{float(r['final']):.2f}" for r in rs),
            f"{np.mean([float(r['final']) for r in rs]):.2f}",
        ]
        for (m, look), rs in groups.items()
    ]


def markdown(
    summary: dict[str, Any],
    by_method: dict[str, list[dict[str, Any]]],
    a: dict[str, Any],
    flags: str = "",
    refs: list[dict[str, Any]] | None = None,
) -> str:
    """The report: metrics per method, per-look tables, single-look references (``refs``), cost split,
    figures; ``flags``: the runs' non-default command-line flags (:func:`budget_flags`)."""
    methods = [m for m in by_method if m in summary]
    names = [short(e) for e in a["stages"]]
    records = [r for rs in by_method.values() for r in rs]
    md = [
        "# Life-long visual RL: one PPO agent through " + " -> ".join(names),
        "",
        f"Produced by `python benchmarks/rl_lifelong.py{flags}` (then `--summarise`). {a['steps_per_look']} "
        f"PPO env steps per stage ({a['n_envs']} sub-envs, {frames(a)}, cpu preset, online VASE round every "
        f"{a['train_every']} frames; PPO n_steps {a['ppo_n_steps']}, batch {a['ppo_batch_size']}, lr "
        f"{a['ppo_lr']}, gamma {a['ppo_gamma']}, entropy bonus {a.get('ppo_ent_coef', 0.0)}); every look "
        f"evaluated at the end of each stage ({a['eval_episodes']} episodes) and at env steps "
        f"{', '.join(map(str, a['curve_at']))} into it ({a['curve_episodes']} episodes). Returns normalised per "
        f"look: (R - random) / (reference - random), the reference = the same method trained on that look alone "
        f"at the same budget. Metrics as Continual World's (average performance, forgetting, forward transfer "
        f"over each stage's first {a['ft_window']} env "
        f"steps), mean [90% bootstrap interval over seeds]. "
        + (rl_report.cost_line(records) if records else ""),
        "",
        common.markdown_table(
            [
                "method",
                "seeds (reference)",
                "average performance",
                "forgetting",
                "forward transfer",
                "CPU s / run",
                "CPU s / 1k env steps",
                "CPU s / reference run",
            ],
            [
                [
                    m,
                    f"{summary[m]['seeds']} ({summary[m]['reference_seeds']})",
                    cell(summary[m]["average_performance"]),
                    cell(summary[m]["forgetting"]),
                    cell(summary[m]["forward_transfer"]),
                    f"{summary[m]['cpu_s_per_run']:.0f}",
                    f"{summary[m]['cpu_s_per_1k_env_steps']:.2f}",
                    "-"
                    if summary[m]["reference_cpu_s_per_run"] is None
                    else f"{summary[m]['reference_cpu_s_per_run']:.0f}",
                ]
                for m in methods
            ],
        ),
        "",
    ]
    md += [
        "## Raw returns at the end of each stage (mean over seeds (each seed))",
        "",
        common.markdown_table(
            ["method", "stage", *(short(e) for e in looks(a["stages"]))], raw_rows(by_method, a["stages"])
        ),
        "",
    ]
    for key, title in (
        ("forgetting", "Forgetting per stage's look (end of its stage minus end of sequence)"),
        ("forward_transfer", "Forward transfer per stage (CW's normalised AUC difference over the window)"),
        ("zero_shot", "Zero-shot return on each stage's look just before its stage"),
    ):
        rows = [
            [m, *(cell(e) for e in summary[m][key]["per_look"])]
            for m in methods
            if "per_look" in summary[m].get(key, {})
        ]
        md += [f"## {title}", "", common.markdown_table(["method", *names], rows), ""]
    rows = [
        [
            m,
            f"{v['look']} (stage {v['stage']})",
            cell(v["first_eval"]),
            cell(v["first_visit_first_eval"]),
            cell(v["zero_shot"]),
        ]
        for m in methods
        for v in summary[m].get("revisits", [])
    ]
    if rows:
        header = [
            "method",
            "revisit",
            "first evaluation",
            "first visit's first evaluation",
            "zero-shot before",
        ]
        md += ["## Revisit (normalised returns)", "", common.markdown_table(header, rows), ""]
    rows = [
        [m, row["look"], str(row["seeds"]), *(cell(row[k]) for k in ("own", "final", *SPLIT))]
        for m in methods
        for row in summary[m].get("forgetting_split") or []
    ]
    if rows:
        md += [
            "## Whose forgetting: the representation's or the policy's",
            "",
            "Each stage's look (normalised return, mean [90% interval]) at the end of its stage (`own`) and of "
            "the sequence (`final`), and at the end of the sequence with the policy (and latent normaliser) "
            "of the end of its stage reading today's representation, and with today's policy reading the "
            "representation of the end of its stage (`2 x eval_episodes` each). `policy then` well below "
            "`own`: the representation moved under the old policy; `policy now` well below `own`: the policy "
            "was overwritten.",
            "",
            common.markdown_table(
                [
                    "method",
                    "look",
                    "seeds",
                    "own",
                    "final",
                    "policy then, representation now",
                    "policy now, representation then",
                ],
                rows,
            ),
            "",
        ]
    rows = inference_rows(by_method)
    if rows:
        md += [
            "## What the learner infers (per sequence run)",
            "",
            "Environments allocated by the end of each stage, and the environment eq. 6 files each look's "
            "frames under at the end of the sequence (a query on 64 fixed frames; '*' = it would allocate).",
            "",
            common.markdown_table(["method", "seed", "environments per stage", "look -> environment"], rows),
            "",
        ]
    rows = reference_rows(refs or [])
    if rows:
        md += [
            "## Single-look references (raw return at the end of the look's only stage)",
            "",
            common.markdown_table(["method", "look", "seeds", "final return per seed", "mean"], rows),
            "",
        ]
    parts = ("env", "encode", "learn", "ppo_update", "evaluation", "other")
    rows = [[m, *(f"{100 * summary[m]['wall_split_fraction'][p]:.0f} %" for p in parts)] for m in methods]
    md += [
        "## Where a sequence run's time goes (share of its wall time)",
        "",
        "env = raw env steps; encode = the VASE wrapper's time less env and learn; learn = online VASE "
        "training (`vase_stats()['train_time_s']`); ppo_update = PPO's gradient steps; evaluation = all "
        "evaluations; other = the policy acting, SB3's bookkeeping and set-up.",
        "",
        common.markdown_table(["method", *parts], rows),
        "",
        *[f"![R matrix of {m}](R_{m}.png)" for m in methods],
        "",
        "![curves](rl_lifelong_curves.png)" if methods else "",
        "",
    ]
    return "\n".join(md)


def inference_rows(by_method: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """Per learning sequence run: environments per stage and the look -> environment map at the end."""
    rows = []
    for m, records in by_method.items():
        for r in sorted(records, key=lambda r: r["seed"]):
            stages = r.get("learner") or []
            if not stages:
                continue
            final = stages[-1].get("inferred", {})
            filed = ", ".join(f"{k}: {v['env']}{'*' if v['allocated'] else ''}" for k, v in final.items())
            rows.append([m, str(r["seed"]), ", ".join(str(x["envs_inferred"]) for x in stages), filed or "-"])
    return rows
