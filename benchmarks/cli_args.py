"""The benchmark scripts' command line, written once: :func:`parse_args` and the base ``Args`` dataclasses.

Every script in ``benchmarks/`` has CleanRL's shape and reads top to bottom: a docstring saying what it
measures and how to run it, an ``Args`` dataclass with a docstring under each field, ``run(args)`` (the
measurement), ``summarise(...)`` (the tables, from the results) and a ``main()`` that starts with::

    args = cli_args.parse_args(Args, __doc__)

Fields that several scripts have (the run budget: seeds, jobs, torch threads; PPO's hyper-parameters; the
learner preset and steps per dataset; an investigation's validation run) are declared once, in the base
dataclasses below, and a script's ``Args`` inherits them (dataclass inheritance; a subclass re-declares a
field only to change its default or its help; ``--help`` lists the script's own fields first). The helper
modules ``paper_common.py``, ``bench3d_common.py`` and ``rl_common.py`` add the bases of one family of
scripts.

The command line is this module's :func:`parse_args` (argparse, ~100 lines), not tyro (CleanRL's choice):
tyro would be one more dependency for a handful of scripts, and the flags the scripts and their tests
have always taken -- ``--field-name`` *and* ``--field_name``, tuples given space- *or* comma-separated
(``--seeds 0,1,2``), ``--x/--no-x`` booleans, fields hidden from ``--help`` by an :data:`INTERNAL`
docstring -- would change under it. The help text is the docstring under each field, as with tyro.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import json
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

INTERNAL = "Internal:"
"""A field whose docstring starts with this is left out of ``--help`` (e.g. a child process's role)."""

T = TypeVar("T")


# ------------------------------------------------------------------------------------ command line
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` and of its dataclass bases (subclass wins)."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError):  # no source (defined interactively): no help texts
            continue
        helps.update(
            {
                a.target.id: " ".join(b.value.value.split())
                for a, b in itertools.pairwise(body)
                if isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
            }
        )
    return helps


def _scalar_type(hint: Any, default: Any) -> Any:
    """The argparse ``type`` of a scalar field (``int | None`` -> int; unknown -> the default's type)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in (int, float, str):
        return hint
    if len(args) == 1 and args[0] in (int, float, str):
        return args[0]
    return type(default) if default is not None else str


def help_order(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``cls`` in the order ``--help`` lists them: the script's own first (those its
    ``Args`` declares or re-declares), then those of each base class in turn (MRO order).

    >>> @dataclasses.dataclass
    ... class Base:
    ...     seeds: tuple[int, ...] = (0,)
    ...     jobs: int = 1
    >>> @dataclasses.dataclass
    ... class Args(Base):
    ...     steps: int = 10
    ...     jobs: int = 2
    >>> [f.name for f in help_order(Args)]
    ['jobs', 'steps', 'seeds']
    """

    def depth(f: dataclasses.Field) -> int:
        return next(i for i, k in enumerate(cls.__mro__) if f.name in vars(k).get("__annotations__", {}))

    return sorted(dataclasses.fields(cls), key=depth)  # type: ignore[arg-type]


def parse_args(cls: type[T], description: str | None = None, argv: Sequence[str] | None = None) -> T:
    """Build ``cls`` (a dataclass) from the command line (CleanRL style; help = the docstring under a field).

    ``--field-name`` (``--field_name`` is accepted too); booleans become ``--x/--no-x``; tuples take
    several values, space- or comma-separated (``--seeds 0 1 2`` or ``--seeds 0,1,2``). Fields whose
    docstring starts with :data:`INTERNAL` are hidden from ``--help``.

    >>> @dataclasses.dataclass
    ... class Args:
    ...     seeds: tuple[int, ...] = (0, 1)
    ...     '''Seeds to run.'''
    ...     fast: bool = False
    >>> parse_args(Args, argv=["--seeds", "3,4", "5", "--fast"])
    Args(seeds=(3, 4, 5), fast=True)
    """
    helps = field_docs(cls)
    try:
        hints = typing.get_type_hints(cls)  # each field's annotation in the module of its class
    except (NameError, KeyError):  # an annotation that does not resolve: fall back to the defaults' types
        hints = {}
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tuples: dict[str, Any] = {}
    for f in help_order(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = helps.get(f.name)
        flags = [f"--{f.name.replace('_', '-')}"]
        kw: dict[str, Any] = {
            "default": default,
            "dest": f.name,
            # argparse %-formats help strings: a literal "90 %" would break --help
            "help": argparse.SUPPRESS
            if text and text.startswith(INTERNAL)
            else text and text.replace("%", "%%"),
        }
        hint = hints.get(f.name)
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, tuple) or typing.get_origin(hint) is tuple:
            element = next(iter(typing.get_args(hint)), None)
            fallback = type(default[0]) if default else str
            tuples[f.name] = element if element in (int, float, str) else fallback
            parser.add_argument(*flags, nargs="+", **kw)
        else:
            parser.add_argument(*flags, type=_scalar_type(hint, default), **kw)
    tokens = list(sys.argv[1:] if argv is None else argv)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    known = {f"--{name}": f"--{name.replace('_', '-')}" for name in names}
    known |= {f"--no-{k[2:]}": f"--no-{v[2:]}" for k, v in known.items()}
    for i, token in enumerate(tokens):  # --field_name spelling -> --field-name
        flag, eq, value = token.partition("=")
        tokens[i] = known.get(flag, flag) + eq + value
    values = vars(parser.parse_args(tokens))
    for name, element in tuples.items():
        if isinstance(values[name], list):  # given on the command line: split commas, convert
            values[name] = tuple(element(v) for item in values[name] for v in str(item).split(",") if v)
    return cls(**values)


# ------------------------------------------------------------------------------------ base Args
@dataclass
class SummariseArgs:
    """Runs that each save a result file when they finish: rerunning the script skips finished runs (it
    resumes), ``--summarise`` only rebuilds the report from the files."""

    summarise: bool = False
    """Only rebuild the tables and figures from the result files."""


@dataclass
class SeedsArgs(SummariseArgs):
    """An experiment of one run per (variant, seed) (:class:`SummariseArgs`)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds to run; each seeds everything random in its run (learner, data, policy, probes)."""


@dataclass
class JobsArgs(SeedsArgs):
    """:class:`SeedsArgs` whose runs go ``jobs`` at a time, in spawned processes (``common.run_pending`` or
    ``paper_common.run_all``)."""

    jobs: int = 2
    """Runs in parallel (processes, one torch thread each)."""


@dataclass
class ThreadsArgs:
    """A measurement in this one process."""

    threads: int = 1
    """torch threads (1: CPU-second rates are per core; the machine is shared with other jobs)."""


@dataclass
class PresetArgs:
    """A learner built from a preset (``vase_rl.core.config.get_preset``)."""

    preset: str = "cpu"
    """Learner preset ('cpu' on CPU: 32x32 inputs; 'paper' on a GPU: 64x64 inputs)."""


@dataclass
class SequenceArgs(PresetArgs):
    """A learner trained on a sequence of datasets (``vase_rl.runs.training.SequenceTrainer``)."""

    steps_per_env: int = 2500
    """Training steps per dataset."""
    probe_eval_every: int = 100
    """Period (steps) of the A.6 probes' evaluation."""


@dataclass
class PPOArgs:
    """The size of SB3 PPO's rollouts and updates; :meth:`ppo_kwargs` passes them to ``PPO(...)``."""

    ppo_n_steps: int = 64
    """PPO rollout length per sub-env."""
    ppo_batch_size: int = 128
    """PPO minibatch size."""
    ppo_epochs: int = 4
    """PPO epochs per rollout."""

    def ppo_kwargs(self) -> dict[str, Any]:
        """``PPO(...)`` keyword arguments of these fields."""
        return {"n_steps": self.ppo_n_steps, "batch_size": self.ppo_batch_size, "n_epochs": self.ppo_epochs}


@dataclass
class AgentArgs(PPOArgs):
    """A PPO agent trained and evaluated on ``n_envs`` sub-envs (:class:`PPOArgs` + the optimisation and
    the evaluation)."""

    n_envs: int = 8
    """Sub-envs of every VecEnv of a run (training, evaluation, reward-free rollouts)."""
    ppo_lr: float = 1e-3
    """PPO learning rate."""
    ppo_gamma: float = 0.95
    """Discount."""
    ppo_ent_coef: float = 0.0
    """Entropy bonus (SB3's default 0)."""
    eval_episodes: int = 32
    """Episodes per evaluation (stochastic policy, held-out seeds)."""

    def ppo_kwargs(self) -> dict[str, Any]:
        return {
            **super().ppo_kwargs(),
            "learning_rate": self.ppo_lr,
            "gamma": self.ppo_gamma,
            "ent_coef": self.ppo_ent_coef,
        }


@dataclass
class ValidationArgs(ThreadsArgs):
    """An investigation: one run of the cpu preset with config overrides on the validation seed (never one
    of the evaluation seeds 0-2), its learned codes read by the offline probes."""

    name: str = ""
    """Name of the run, in its result file's name."""
    overrides: str = "{}"
    """JSON dict of ``VASEConfig.with_overrides`` sections on top of the cpu preset, e.g.
    '{"loss": {"entangled": true}}'."""
    seed: int = 100
    """Validation seed of the learner and the data."""
    probe_train: int = 10_000
    """Train-split images the offline probes are fit on."""
    probe_test: int = 5_000
    """Held-out test-split images the offline probes are scored on."""
    probe_epochs: int = 40
    """Epochs of the offline MLP probe."""

    def config(self) -> Any:
        """The cpu preset with :attr:`overrides` on :attr:`seed`."""
        from vase_rl.core.config import get_preset

        return get_preset("cpu").with_overrides(seed=self.seed, **json.loads(self.overrides))

    def probe_config(self) -> Any:
        """The offline probes' ``OfflineProbeConfig`` (sizes and epochs of the ``probe_*`` fields)."""
        from vase_rl.probing.offline_probe import OfflineProbeConfig

        return OfflineProbeConfig(
            train_size=self.probe_train, test_size=self.probe_test, epochs=self.probe_epochs
        )
