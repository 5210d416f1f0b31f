"""The AtariARI probing protocol (Anand et al. 2019, section 4 and appendix): linear probes for the
RAM state variables of Atari frames, scored by weighted F1, reported per category.

Protocol, step by step (each step one function):

1. :func:`collect_labelled_frames`: frames of a uniformly random agent with their RAM labels
   (:mod:`vase_rl.envs.atari`), preprocessed to the learner's input: grayscale, resized from the
   screen's 210x160 to ``image_size`` x ``image_size`` by area averaging
   (:func:`vase_rl.core.preprocess.to_model_input`; 32x32 for the cpu preset, 64x64 for the paper preset --
   AtariARI probes its encoders on the full 210x160 screen).
2. :func:`split_by_episode`: episodes shuffled (seeded) and split 70/10/20 into train/val/test
   (AtariARI's ``get_episodes``). With ``segment_frames > 0`` an episode is first cut into segments of
   that many consecutive frames and segments are split instead, so a small budget still yields enough
   units (a random agent plays Pong for ~900 steps).
3. :func:`remove_duplicates`: frames of val or test whose bytes (the preprocessed frame) also occur in
   an earlier split are dropped (AtariARI drops test frames seen in train or val).
4. :func:`informative_labels`: variables whose entropy (nats) over the *train* split is below 0.6 are
   dropped (AtariARI computes it over all collected frames; the train split alone is used here so the
   test frames choose nothing).
5. :func:`fit_linear_probes`: one linear layer per representation, a 256-way softmax per variable
   (the RAM byte; values never seen in train cannot be predicted and get no logit), trained jointly with
   Adam on the train split, early-stopped on the val loss; :func:`weighted_f1` on the test split
   (``sklearn.metrics.f1_score(average="weighted")``).
6. :func:`category_scores`: the mean F1 of each AtariARI category and the mean over categories.

Everything is deterministic given a seed (the probe's own generator; torch's global RNG is left as it
was).

>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 5, (600, 2))  # two variables, five values each
>>> codes = np.concatenate([np.eye(5)[y[:, 0]], np.eye(5)[y[:, 1]]], 1).astype(np.float32)
>>> f1 = fit_linear_probes((codes[:400], y[:400]), (codes[400:500], y[400:500]), (codes[500:], y[500:]))
>>> [round(float(v), 2) for v in f1]
[1.0, 1.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from vase_rl.core.preprocess import to_model_input
from vase_rl.envs.atari import CATEGORIES, AtariEnvConfig, categories, random_agent_frames
from vase_rl.probing.metrics import discrete_entropy
from vase_rl.probing.offline_probe import standardise

__all__ = [
    "AtariProbeConfig",
    "LabelledFrames",
    "Splits",
    "category_scores",
    "collect_labelled_frames",
    "fit_linear_probes",
    "informative_labels",
    "label_entropy",
    "remove_duplicates",
    "split_by_episode",
    "weighted_f1",
]

N_VALUES = 256
"""A RAM byte takes 256 values: the probe's classes."""


@dataclass(frozen=True)
class AtariProbeConfig:
    """The probe protocol's constants (AtariARI's values unless said)."""

    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    """Train / val / test shares of the episodes."""
    entropy_threshold: float = 0.6
    """Variables whose train-split entropy (nats) is below this are dropped."""
    lr: float = 1e-3
    """Adam learning rate of the linear probe (AtariARI's ``ProbeTrainer``: 5e-4 on ~35k train frames;
    twice that here, where splits of a few thousand frames give fewer steps per epoch)."""
    batch_size: int = 64
    """Probe mini-batch."""
    epochs: int = 100
    """Most passes over the train split."""
    patience: int = 15
    """Epochs without a better val loss before the probe stops (the best epoch's weights are kept)."""
    seed: int = 0
    """Seed of the probe's initialisation and shuffling."""

    def __post_init__(self) -> None:
        if min(self.fractions) <= 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise ValueError(f"fractions must be three positive shares summing to 1; got {self.fractions}")
        for name in ("batch_size", "epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"AtariProbeConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class LabelledFrames:
    """Frames of one game with their labels and split units."""

    frames: np.ndarray
    """(n, S, S, 1) uint8: the learner's input."""
    labels: np.ndarray
    """(n, V) int64 in [0, 256): the RAM byte of each variable."""
    names: tuple[str, ...]
    """The V variable names (:data:`vase_rl.envs.atari.RAM_ANNOTATIONS` order)."""
    episodes: np.ndarray
    """(n,) int: the split unit of each frame (an episode, or an episode's segment)."""

    def take(self, index: np.ndarray, columns: np.ndarray | None = None) -> LabelledFrames:
        """The frames at ``index`` (and only the variables at ``columns``, when given)."""
        cols = np.arange(len(self.names)) if columns is None else np.asarray(columns)
        return LabelledFrames(
            self.frames[index],
            self.labels[index][:, cols],
            tuple(self.names[c] for c in cols),
            self.episodes[index],
        )


@dataclass(frozen=True)
class Splits:
    """Frame indices of the train, val and test splits."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


# ------------------------------------------------------------------------------------ 1. data
def to_uint8_input(frames: np.ndarray, image_size: int) -> np.ndarray:
    """Screens (n, H, W) uint8 -> the learner's input (n, S, S, 1) uint8 (area-averaged, rounded)."""
    x = to_model_input(frames[..., None], image_size, channels=1)
    return (x.permute(0, 2, 3, 1) * 255.0).round().to(torch.uint8).numpy()


def collect_labelled_frames(
    game: str,
    n_frames: int,
    seed: int,
    image_size: int,
    segment_frames: int = 0,
    env_config: AtariEnvConfig | None = None,
    chunk: int = 512,
) -> LabelledFrames:
    """``n_frames`` random-agent frames of ``game`` preprocessed to ``image_size``, with RAM labels.

    ``segment_frames > 0`` cuts every episode into units of that many consecutive frames (see step 2 of
    the module docstring). Deterministic given ``seed``.
    """
    frames, labels, episodes = [], [], []
    names: tuple[str, ...] = ()
    screens: list[np.ndarray] = []
    step_in_episode, last_episode = 0, 0
    for f in random_agent_frames(game, n_frames, seed, env_config):
        if f.episode != last_episode:
            step_in_episode, last_episode = 0, f.episode
        if not names:
            names = tuple(f.labels)
        labels.append([f.labels[k] for k in names])
        unit = step_in_episode // segment_frames if segment_frames > 0 else 0
        episodes.append((f.episode, unit))
        step_in_episode += 1
        screens.append(f.frame)
        if len(screens) == chunk:
            frames.append(to_uint8_input(np.stack(screens), image_size))
            screens = []
    if screens:
        frames.append(to_uint8_input(np.stack(screens), image_size))
    if not names:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    _, unit_ids = np.unique(np.array(episodes), axis=0, return_inverse=True)
    return LabelledFrames(
        np.concatenate(frames), np.array(labels, np.int64), names, unit_ids.reshape(-1).astype(np.int64)
    )


# ------------------------------------------------------------------------------------ 2.-4. splits
def split_by_episode(episodes: np.ndarray, seed: int, config: AtariProbeConfig | None = None) -> Splits:
    """Shuffle the distinct episode ids (seeded) and cut them 70/10/20: frame indices per split.

    episodes: (n,) int. Each split gets at least one episode; ValueError with fewer than three.
    """
    cfg = config or AtariProbeConfig()
    ids = np.unique(episodes)
    if len(ids) < 3:
        raise ValueError(
            f"need >= 3 episodes to split train/val/test, got {len(ids)} (collect more frames "
            "or cut episodes into segments)"
        )
    ids = ids[np.random.RandomState(seed).permutation(len(ids))]
    cut = np.floor(np.cumsum(cfg.fractions[:2]) * len(ids) + 1e-9).astype(int)  # 0.7 + 0.1 is 0.7999...
    val_at = min(max(1, int(cut[0])), len(ids) - 2)
    test_at = min(max(val_at + 1, int(cut[1])), len(ids) - 1)
    parts = (ids[:val_at], ids[val_at:test_at], ids[test_at:])
    train, val, test = (np.flatnonzero(np.isin(episodes, p)) for p in parts)
    return Splits(train, val, test)


def remove_duplicates(frames: np.ndarray, splits: Splits) -> Splits:
    """Drop val frames identical to a train frame, and test frames identical to a train or val frame.

    frames: (n, ...) uint8; identity is equality of the frame's bytes (a hash set of them).
    """

    def keys(index: np.ndarray) -> list[bytes]:
        return [frames[i].tobytes() for i in index]

    seen = set(keys(splits.train))
    val = np.array([i for i, k in zip(splits.val, keys(splits.val), strict=True) if k not in seen], np.int64)
    seen.update(keys(val))
    test = np.array(
        [i for i, k in zip(splits.test, keys(splits.test), strict=True) if k not in seen], np.int64
    )
    return Splits(splits.train, val, test)


def label_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy in nats of each column's empirical distribution: labels (n, V) int -> (V,) float."""
    return np.array([discrete_entropy(labels[:, v]) for v in range(labels.shape[1])])


def informative_labels(train_labels: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """Indices of the columns of train_labels (n, V) whose entropy is >= ``threshold`` nats."""
    return np.flatnonzero(label_entropy(train_labels) >= threshold)


# ------------------------------------------------------------------------------------ 5. the probe
def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Weighted F1 over the classes present (``sklearn.metrics.f1_score(average="weighted")``)."""
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def _class_maps(train_y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per variable, the values seen in train (its classes) and each variable's offset in the logits."""
    values = [np.unique(train_y[:, v]) for v in range(train_y.shape[1])]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in values])])
    return values, offsets


def _targets(y: np.ndarray, values: list[np.ndarray]) -> torch.Tensor:
    """Labels (n, V) -> class indices (n, V); a value unseen in train -> -100 (ignored by the loss)."""
    out = np.full(y.shape, -100, np.int64)
    for v, classes in enumerate(values):
        pos = np.clip(np.searchsorted(classes, y[:, v]), 0, len(classes) - 1)
        out[:, v] = np.where(classes[pos] == y[:, v], pos, -100)
    return torch.as_tensor(out)


def _loss(logits: torch.Tensor, target: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """Mean over variables of each variable's cross-entropy (its slice of the logits)."""
    terms = [
        nn.functional.cross_entropy(logits[:, a:b], target[:, v], ignore_index=-100, reduction="sum")
        for v, (a, b) in enumerate(itertools.pairwise(offsets))
    ]
    return torch.stack(terms).sum() / max(1, int((target >= 0).sum()))


def _train_probe(
    x: torch.Tensor,
    t: torch.Tensor,
    xv: torch.Tensor,
    tv: torch.Tensor,
    offsets: np.ndarray,
    cfg: AtariProbeConfig,
) -> nn.Linear:
    """Adam on mini-batches, early stopping on the val loss; the best epoch's weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        probe = nn.Linear(x.shape[1], int(offsets[-1]))
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    best, best_state, waited = float("inf"), {k: v.clone() for k, v in probe.state_dict().items()}, 0
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            _loss(probe(x[batch]), t[batch], offsets).backward()
            opt.step()
        if not len(xv):  # no val frames: no early stopping, the last epoch's weights
            best_state = probe.state_dict()
            continue
        with torch.no_grad():
            val = float(_loss(probe(xv), tv, offsets))
        if val < best - 1e-6:
            best, best_state, waited = val, {k: v.clone() for k, v in probe.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    probe.load_state_dict(best_state)
    return probe


def fit_linear_probes(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    config: AtariProbeConfig | None = None,
) -> np.ndarray:
    """Weighted test F1 of a linear probe per variable: each split is (codes (n, D) float, labels (n, V)).

    One linear layer D -> sum of the variables' classes, a softmax per variable (step 5 of the module
    docstring), codes standardised with the train split's statistics. Returns (V,) F1 in [0, 1].
    """
    cfg = config or AtariProbeConfig()
    (xtr, ytr), (xva, yva), (xte, yte) = train, val, test
    if ytr.min(initial=0) < 0 or ytr.max(initial=0) >= N_VALUES:
        raise ValueError(f"labels must be RAM bytes in [0, {N_VALUES}); got [{ytr.min()}, {ytr.max()}]")
    x, xv, xt = standardise(
        np.asarray(xtr, np.float32), np.asarray(xva, np.float32), np.asarray(xte, np.float32)
    )
    values, offsets = _class_maps(ytr)
    probe = _train_probe(x, _targets(ytr, values), xv, _targets(yva, values), offsets, cfg)
    with torch.no_grad():
        logits = probe(xt).numpy()
    f1 = np.zeros(ytr.shape[1])
    for v, (a, b) in enumerate(itertools.pairwise(offsets)):
        f1[v] = weighted_f1(yte[:, v], values[v][logits[:, a:b].argmax(1)]) if len(yte) else float("nan")
    return f1


# ------------------------------------------------------------------------------------ 6. the report
def category_scores(names: Sequence[str], f1: Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    """Mean F1 per AtariARI category present, ``mean_over_categories`` and ``mean`` (over variables).

    A variable counts in each of its :func:`vase_rl.envs.atari.categories` (AtariARI's
    ``compute_category_avgs``); categories without a variable are left out.

    >>> scores = category_scores(["player_x", "ball_y", "score", "enemy_x"], [1.0, 0.5, 0.0, 0.5])
    >>> scores["agent_localization"], scores["other_localization"], scores["mean_over_categories"]
    (1.0, 0.5, 0.5)
    >>> scores["mean"], len(scores)  # four categories present, their mean and the mean over variables
    (0.5, 6)
    """
    scores = dict(f1) if isinstance(f1, Mapping) else dict(zip(names, f1, strict=True))
    out: dict[str, float] = {}
    for cat in CATEGORIES:
        vals = [scores[n] for n in names if cat in categories(n)]
        if vals:
            out[cat] = float(np.mean(vals))
    out["mean_over_categories"] = float(np.mean(list(out.values()))) if out else float("nan")
    out["mean"] = float(np.mean([scores[n] for n in names])) if len(names) else float("nan")
    return out
