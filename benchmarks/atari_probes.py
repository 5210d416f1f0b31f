"""Atari state probes (AtariARI, Anand et al. 2019): how much of each game's RAM state a frozen
representation keeps, and how much of an earlier game's it forgets while learning later ones.

Protocol (:mod:`vase_rl.probing.atari_probe`): frames of a uniformly random agent with their RAM labels
(:mod:`vase_rl.envs.atari`), grayscale and area-resized from 210x160 to the cpu preset's 32x32 (every
representation sees the same 32x32 frames); episodes (cut into ``--segment-frames`` segments) split
70/10/20 into train/val/test; val/test frames identical to an earlier split's dropped; variables with
train-split entropy < 0.6 nats dropped; a linear 256-way probe per variable, weighted F1 on test,
averaged per AtariARI category and over categories.

Representations, at the same 32x32 input:

- ``vase``: ``ContinualLearner`` with the cpu preset, trained on the games one after another
  (``--steps-per-game`` steps each, batches of the current game's train-split frames);
- ``entangled``: the entangled beta=1 ELBO baseline (``VASEConfig.for_row("-", True, base=cpu)``),
  same sequence and budget;
- ``untrained``: the cpu preset's encoder at initialisation (same seed);
- ``pixels``: the 1,024 raw pixels.

The trained ones are probed on every game seen so far after each game; forgetting of a game = its
F1 (mean over categories) right after it was trained minus its F1 after the last game.

One JSON per (representation, seed) in ``benchmarks/results/atari_probes/``, skipped when present;
``--summarise`` writes ``atari_probes.md`` and ``atari_probes.png``.

    python benchmarks/atari_probes.py --seeds 0 --threads 1
    python benchmarks/atari_probes.py --summarise
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
import torch
from tqdm import tqdm

from vase_rl.core.config import VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.probing import atari_probe as ap
from vase_rl.probing.offline_probe import encode_codes, pixel_codes

OUT = common.RESULTS / "atari_probes"
REPRESENTATIONS = ("vase", "entangled", "untrained", "pixels")
TRAINED = ("vase", "entangled")


@dataclass
class Args(cli_args.SeedsArgs, cli_args.ThreadsArgs):
    games: tuple[str, ...] = ("pong", "breakout", "boxing", "freeway")
    """Games in training order (AtariARI names, see vase_rl.envs.atari.RAM_ANNOTATIONS)."""
    representations: tuple[str, ...] = REPRESENTATIONS
    """Representations to probe (see the module docstring)."""
    frames_per_game: int = 5000
    """Random-agent frames collected per game (AtariARI: 50,000-100,000)."""
    segment_frames: int = 250
    """Episodes are cut into segments of this many frames before the 70/10/20 split (0: whole episodes)."""
    steps_per_game: int = 500
    """Learner steps on each game (cpu preset: 2,500 steps per dataset)."""
    seeds: tuple[int, ...] = (0,)
    probe_epochs: int = 100
    """Most epochs of each linear probe (early-stopped on the val loss)."""


@dataclass(frozen=True)
class GameData:
    """One game's probe splits (informative variables only)."""

    train: ap.LabelledFrames
    val: ap.LabelledFrames
    test: ap.LabelledFrames
    info: dict[str, Any]


def prepare(game: str, index: int, seed: int, size: int, args: Args) -> GameData:
    """Collect, split, de-duplicate and filter one game's frames (seed fixed per game, not per method)."""
    data = ap.collect_labelled_frames(
        game, args.frames_per_game, 1000 * seed + index, size, args.segment_frames
    )
    raw = ap.split_by_episode(data.episodes, seed)
    splits = ap.remove_duplicates(data.frames, raw)
    keep = ap.informative_labels(data.labels[splits.train])
    entropy = ap.label_entropy(data.labels[splits.train])
    info = {
        "units": len(np.unique(data.episodes)),
        "frames": {k: len(getattr(splits, k)) for k in ("train", "val", "test")},
        "duplicates_removed": len(raw.val) + len(raw.test) - len(splits.val) - len(splits.test),
        "entropy": dict(zip(data.names, entropy.round(3).tolist(), strict=True)),
        "kept": [data.names[c] for c in keep],
    }
    return GameData(*(data.take(getattr(splits, k), keep) for k in ("train", "val", "test")), info)


def config(rep: str, seed: int) -> VASEConfig:
    """The learner config of a representation: cpu preset, or its entangled beta=1 baseline."""
    cpu = get_preset("cpu").with_overrides(seed=seed)
    return VASEConfig.for_row("-", True, base=cpu) if rep == "entangled" else cpu


def probe(encode: Any, game: GameData, pc: ap.AtariProbeConfig) -> dict[str, Any]:
    """F1 per variable and per category of ``encode`` (None: raw pixels) on one game."""
    codes = [
        pixel_codes(s.frames) if encode is None else encode_codes(encode, s.frames)
        for s in (game.train, game.val, game.test)
    ]
    f1 = ap.fit_linear_probes(
        (codes[0], game.train.labels), (codes[1], game.val.labels), (codes[2], game.test.labels), pc
    )
    names = game.train.names
    return {
        "f1": dict(zip(names, f1.round(4).tolist(), strict=True)),
        "categories": ap.category_scores(names, f1),
    }


def train_on(
    learner: ContinualLearner, frames: np.ndarray, steps: int, rng: np.random.Generator, desc: str
) -> int:
    """``steps`` learner steps on batches of distinct frames (n, S, S, 1) uint8; the environments used."""
    n_envs = 0
    for _ in tqdm(range(steps), desc=desc, mininterval=10, leave=False):
        batch = rng.choice(len(frames), learner.config.batch_size, replace=False)
        n_envs = learner.train_step(frames[batch]).n_envs
    return n_envs


def run(rep: str, seed: int, args: Args) -> dict[str, Any]:
    """Probe one representation over the game sequence (trained ones: after every game)."""
    torch.set_num_threads(args.threads)
    cfg = config(rep, seed)
    pc = ap.AtariProbeConfig(epochs=args.probe_epochs, seed=seed)
    t0 = time.process_time()
    games = [prepare(g, i, seed, cfg.model.image_size, args) for i, g in enumerate(args.games)]
    record: dict[str, Any] = {
        "representation": rep,
        "seed": seed,
        "args": asdict(args),
        "probe": asdict(pc),
        "config": cfg.to_dict(),
        "data": {g: d.info for g, d in zip(args.games, games, strict=True)},
        "data_cpu_s": time.process_time() - t0,
        "stages": [],
    }
    learner = ContinualLearner(cfg, device="cpu")
    encode = None if rep == "pixels" else learner.encode
    if rep not in TRAINED:
        scores = {g: probe(encode, d, pc) for g, d in zip(args.games, games, strict=True)}
        record["stages"] = [{"after": None, "scores": scores}]
    rng = np.random.default_rng(seed)
    train_cpu = 0.0
    for k, (game, data) in enumerate(zip(args.games, games, strict=True) if rep in TRAINED else ()):
        t0 = time.process_time()
        n_envs = train_on(learner, data.train.frames, args.steps_per_game, rng, f"{rep} {game}")
        train_cpu += time.process_time() - t0
        scores = {g: probe(encode, d, pc) for g, d in zip(args.games[: k + 1], games[: k + 1], strict=True)}
        record["stages"].append(
            {
                "after": game,
                "steps": (k + 1) * args.steps_per_game,
                "n_envs": n_envs,
                "train_cpu_s": train_cpu,
                "scores": scores,
            }
        )
        means = {g: round(s["categories"]["mean_over_categories"], 3) for g, s in scores.items()}
        print(rep, seed, game, means, flush=True)
    record["hardware"] = common.hardware()
    return record


def _path(rep: str, seed: int) -> Path:
    return OUT / f"{rep}_seed{seed}.json"


# ------------------------------------------------------------------------------------ summary
def _score(stage: dict[str, Any], game: str, key: str = "mean_over_categories") -> float:
    return float(stage["scores"][game]["categories"].get(key, np.nan)) if game in stage["scores"] else np.nan


def final_and_forgetting(rec: dict[str, Any], games: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """F1 (mean over categories) of each game after the last stage, and each earlier game's forgetting."""
    final = {g: _score(rec["stages"][-1], g) for g in games}
    if rec["representation"] not in TRAINED:
        return final, {}
    own = {st["after"]: _score(st, st["after"]) for st in rec["stages"]}
    return final, {g: own[g] - final[g] for g in games[:-1]}


def _mean(values: list[float]) -> str:
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    if not len(a):
        return "-"
    return f"{a.mean():.3f}" if len(a) == 1 else f"{a.mean():.3f} +- {a.std(ddof=1):.3f}"


def _targets(by_rep: dict[str, list[dict[str, Any]]], games: list[str]) -> list[str]:
    """The issue's two targets, met or not, from the seed means."""

    def mean_final(rep: str, g: str) -> float:
        return float(np.mean([final_and_forgetting(r, games)[0][g] for r in by_rep[rep]]))

    lines = []
    if "vase" in by_rep and "untrained" in by_rep:
        above = [g for g in games if mean_final("vase", g) > mean_final("untrained", g)]
        lines.append(
            f"- VASE above the untrained encoder (after the sequence) on >= 4 games: "
            f"{'met' if len(above) >= 4 else 'not met'} "
            f"({len(above)}/{len(games)}: {', '.join(above) or 'none'})"
        )
    if "vase" in by_rep and "entangled" in by_rep:
        forget = {
            rep: float(
                np.mean([np.mean(list(final_and_forgetting(r, games)[1].values())) for r in by_rep[rep]])
            )
            for rep in TRAINED
        }
        lines.append(
            f"- VASE forgets less than the entangled baseline: "
            f"{'met' if forget['vase'] < forget['entangled'] else 'not met'} (mean forgetting "
            f"{forget['vase']:.3f} vs {forget['entangled']:.3f} F1)"
        )
    return lines


def _figure(by_rep: dict[str, list[dict[str, Any]]], games: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(games), 3.4))
    width = 0.8 / max(1, len(by_rep))
    for i, (rep, recs) in enumerate(by_rep.items()):
        vals = np.array([[final_and_forgetting(r, games)[0][g] for g in games] for r in recs])
        ax.bar(np.arange(len(games)) + i * width, vals.mean(0), width, yerr=vals.std(0), label=rep, capsize=2)
    ax.set(
        xticks=np.arange(len(games)) + 0.4 - width / 2,
        xticklabels=games,
        ylim=(0, 1),
        ylabel="weighted F1 (mean over categories)",
        title="Linear probes after the whole sequence",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "atari_probes.png", dpi=120)
    plt.close(fig)


def summarise() -> str:
    """Markdown tables (F1 after the sequence, forgetting, categories) and the bar chart."""
    records = [common.load_json(p) for p in sorted(OUT.glob("*_seed*.json"))]
    if not records:
        return "no results yet"
    games = list(records[0]["args"]["games"])
    by_rep = {rep: [r for r in records if r["representation"] == rep] for rep in REPRESENTATIONS}
    by_rep = {k: v for k, v in by_rep.items() if v}
    rows = []
    for rep, recs in by_rep.items():
        finals = [final_and_forgetting(r, games) for r in recs]
        forgetting = _mean([np.mean(list(f[1].values())) for f in finals]) if rep in TRAINED else "-"
        rows.append([rep, *[_mean([f[0][g] for f in finals]) for g in games], forgetting, len(recs)])
    cats = sorted(
        {
            c
            for r in records
            for s in r["stages"][-1]["scores"].values()
            for c in s["categories"]
            if c not in ("mean", "mean_over_categories")
        }
    )
    cat_rows = [
        [rep, g, *[_mean([_score(r["stages"][-1], g, c) for r in recs]) for c in cats]]
        for rep, recs in by_rep.items()
        for g in games
    ]
    _figure(by_rep, games)
    a, hw = records[0]["args"], records[0]["hardware"]
    data = records[0]["data"]
    data_rows = [
        [
            g,
            d["units"],
            d["frames"]["train"],
            d["frames"]["val"],
            d["frames"]["test"],
            d["duplicates_removed"],
            len(d["kept"]),
            len(d["entropy"]),
        ]
        for g, d in data.items()
    ]
    cpu = {
        rep: _mean([r["stages"][-1].get("train_cpu_s", np.nan) for r in recs]) for rep, recs in by_rep.items()
    }
    text = (
        "# Atari state probes (AtariARI protocol)\n\n"
        f"Games in training order: {', '.join(games)}. Budget: {a['frames_per_game']} random-agent frames "
        f"per game (segments of {a['segment_frames']}), {a['steps_per_game']} learner steps per game (cpu "
        f"preset, batch 64), seeds {sorted({r['seed'] for r in records})}, frames 32x32 grayscale (from "
        f"210x160). Training CPU s: {', '.join(f'{k} {v}' for k, v in cpu.items() if v != '-')}. "
        f"Hardware: {hw.get('cpu')}, "
        f"{hw.get('torch_threads')} torch thread(s); commit {hw.get('commit')}.\n\n"
        "## Weighted F1 after the whole sequence (mean over categories); forgetting = F1 right after a game "
        "minus F1 at the end, mean over the earlier games\n\n"
        + common.markdown_table(["representation", *games, "forgetting", "seeds"], rows)
        + "\n\n## Targets (issue 16 point 4)\n\n"
        + "\n".join(_targets(by_rep, games))
        + "\n\n![F1 after the sequence](atari_probes.png)\n\n## Per category, after the sequence\n\n"
        + common.markdown_table(["representation", "game", *cats], cat_rows)
        + "\n\n## Data (seed "
        + str(records[0]["seed"])
        + ")\n\n"
        + common.markdown_table(
            ["game", "units", "train", "val", "test", "duplicates removed", "variables kept", "variables"],
            data_rows,
        )
        + "\n\nProduced by `python benchmarks/atari_probes.py` then `--summarise`.\n"
    )
    common.write_text(OUT / "atari_probes.md", text)
    return text


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    unknown = set(args.representations) - set(REPRESENTATIONS)
    if unknown:
        raise SystemExit(f"unknown representations {sorted(unknown)}; choose from {REPRESENTATIONS}")
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.summarise:
        for seed in args.seeds:
            for rep in args.representations:
                path = _path(rep, seed)
                if not path.exists():
                    common.write_json(path, run(rep, seed, args))
    print(summarise())


if __name__ == "__main__":
    main()
