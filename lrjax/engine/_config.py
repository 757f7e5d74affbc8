"""One typed schema for a training run: frozen dataclasses, defaults in ONE place.

A config is read from YAML (or built in Python), overridden with ``--set a.b=c``
pairs (the value is parsed as YAML, :func:`lrjax._yaml.load`: every number people write is a number), and validated into
:class:`Config`. Unknown keys, wrong types and impossible values raise
:class:`ConfigError` naming the key path, the value and what is allowed, with
the closest valid key when there is one.

>>> from lrjax.engine import load_config
>>> cfg = load_config(None, ["train.steps=50", "data.batch_size=32"])
>>> cfg.train.steps, cfg.data.batch_size, cfg.optimizer.name
(50, 32, 'adamw')
>>> load_config(None, ["train.stepz=5"])
Traceback (most recent call last):
...
lrjax.engine._config.ConfigError: unknown key 'train.stepz' (did you mean 'steps'?); valid keys in 'train': steps, ...
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import inspect
import json
import os
import re
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any, Literal, Union

import optax
import optax.contrib
import yaml

import lrjax._yaml as _yaml
from lrjax._checks import closest, fail
from lrjax.optim import to_steps
from lrjax.schedules import from_spec

__all__ = [
    "AverageConfig",
    "EarlyStopConfig",
    "LOGGERS",
    "loggers",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "parse_override",
    "resolve_durations",
    "resolve_average",
    "resolve_train",
    "train_counts",
    "train_steps",
    "TrainCounts",
    "TRAIN_COUNTS",
    "OPTIONAL_PACKAGES",
    "DroppedArgumentsWarning",
    "optimizer_arguments",
    "optimizer_factory",
    "SCHEDULE_FREE",
    "run_name",
    "LOSSES",
    "SelectionOnTestSetWarning",
    "with_validation",
]


class ConfigError(ValueError):
    """A config value is unknown, of the wrong type, or impossible. The message names the key path."""


def _default_schedule() -> dict[str, Any]:
    # Linear warmup over the first 10 % of the run, then cosine to 1 % of the peak at the end.
    return {
        "name": "warmup",
        "warmup_steps": "10%",
        "schedule": {"name": "cosine_decay", "peak": 3e-3, "decay_steps": "90%", "floor": 1e-2,
                     "floor_mode": "relative"},
    }


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are batched.

    ``source``: ``digits`` (scikit-learn's bundled 8x8 digits, no download), ``mnist1d`` (MNIST-1D,
    generated locally and cached), a ``.npz`` with ``x_train, y_train, x_test, y_test`` (integer labels,
    or float targets for regression), a directory of MNIST/Fashion-MNIST IDX files (``.gz`` or raw) or a
    directory of CIFAR-10 python batches. ``batch_size`` is the global batch per micro-step (split across
    devices). ``test_fraction`` only applies to sources without a test split (``digits``, a ``.npz`` without
    ``x_test, y_test``): that share is held out with the data seed.

    ``validation_fraction``: the share of the *training* examples held out as a validation split, drawn
    with the data seed. Whatever chooses — a sweep's ranking, pruning, population-based training,
    reduce-on-plateau, the parallel range test's ranking — looks at it, never at the test set. ``null``
    (default): 0.1 where something chooses (a sweep, a ``plateau``, the parallel range test), else 0 (a
    plain run keeps every training example). ``0`` with something choosing warns that the test set
    selects. ``seed``: the seed of the data splits (default: ``train.seed``).

    ``num_classes``: the class count ``C`` when some of the classes ``0 .. C-1`` are absent from the data
    (default ``null``: the labels must be ``0 .. C-1`` with every class in the training split); for token
    windows, the vocabulary (default: the largest token + 1).

    Text (language models): ``source: text`` reads the bytes of ``path`` — a file, or every text file under a
    folder — or, without a ``path``, the running Python's standard-library sources (real text on every
    machine, no download); the tokens are the bytes (vocabulary 256). ``context``: tokens per training
    window (training draws windows of ``context + 1`` bytes at random offsets on the device every step).
    ``eval_windows``: the fixed, seeded windows each evaluation split is scored on (``null``: all of the
    split, strided). A ``.npz`` of token windows (integer ``x_*``, ``y_*`` of shape ``(N, T)``, a target
    < 0 is padding) trains the same way.
    ``trust_pickle``: unpickle a CIFAR-10 folder whose files are not the official release (default
    ``false``: unpickling a crafted file runs any code in it, so only files with the official checksums
    are read). A ``.npz`` (read with ``allow_pickle=False``), IDX files and YAML never execute code.
    """

    source: str = "digits"
    batch_size: int = 64
    test_fraction: float = 0.2
    validation_fraction: float | None = None
    seed: int | None = None
    eval_batch_size: int = 1024
    normalize: bool = True
    num_classes: int | None = None
    trust_pickle: bool = False
    path: str | None = None
    context: int | None = None
    eval_windows: int | None = 256


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model: a built-in ``kind`` or your own ``factory``.

    Built-in: ``mlp`` (``hidden`` widths), ``cnn`` (``channels`` per conv block, then ``hidden``) or
    ``resnet`` (``channels`` per stage, ``blocks`` residual blocks per stage, GroupNorm).

    ``factory: "MODULE:NAME"`` names any callable returning a Flax NNX module that maps a batch ``x`` to
    outputs (then ``kind``, ``hidden``, ``channels`` and ``blocks`` are not used). ``MODULE`` is a dotted
    module name looked up in the config file's own folder first, then the working directory, then the
    installed packages, or a path to a ``.py`` file (``models/net.py:Net``). A file is loaded by its path
    alone: its folder never goes on ``sys.path``, so other files there (a ``tqdm.py``, an ``optax.py``) are
    never imported in place of lrjax's dependencies; while the module runs it may import its own siblings
    that are not installed packages. It is called as
    ``NAME(rngs=nnx.Rngs(...), **args)``, plus ``input_shape=`` (one example's shape) and
    ``num_outputs=`` (classes, or regression targets) when its signature accepts them. Input shape and
    output count come from the data.

    ``transformer``: a decoder-only, pre-LN, causal language model (GPT-2's shapes and initialisation) of
    ``d_model`` width, ``layers`` blocks of ``heads`` heads, learned positions for ``context`` tokens
    (default: the data's windows), its head tied to the token embedding; for token windows (``source:
    text`` or a ``.npz`` of windows).
    """

    kind: Literal["mlp", "cnn", "resnet", "transformer"] = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, ...] = (32, 64)
    blocks: int = 2
    d_model: int = 128
    layers: int = 4
    heads: int = 4
    context: int | None = None
    factory: str | None = None
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __hash__(self) -> int:  # args is a dict: hash its canonical JSON (model structures are cached by config)
        return hash((self.kind, self.hidden, self.channels, self.blocks, self.d_model, self.layers, self.heads,
                     self.context, self.factory, json.dumps(self.args, sort_keys=True, default=repr)))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optax optimizer by name with its arguments.

    ``args`` values are numbers or schedule specs (e.g. ``b1: {name: momentum_of, schedule: ...}``);
    the learning rate is the top-level ``schedule``. ``cycle_momentum`` feeds the schedule's momentum
    companion (one-cycle, cyclic) to ``b1`` (Adam family) or ``momentum`` (SGD, RMSProp).
    ``batch_scaling`` (``none``, ``linear``, ``sqrt``) rescales the rate from ``base_batch_size`` to the
    effective batch (batch x accumulation x processes).
    """

    name: str = "adamw"
    args: dict[str, Any] = dataclasses.field(default_factory=lambda: {"weight_decay": 1e-4})
    cycle_momentum: bool = False
    clip_norm: float | None = None
    accumulation_steps: int = 1
    batch_scaling: Literal["none", "linear", "sqrt"] = "none"
    base_batch_size: int | None = None


@dataclasses.dataclass(frozen=True)
class AverageConfig:
    """Averaged weights (``train.average``), evaluated beside the trained ones (``val_avg_*``, ``test_avg_*``).

    ``kind``: ``swa`` — the equal-weight running mean of the parameters after every update past the first
    ``start`` (PyTorch's ``AveragedModel`` default, updated at every step),
    :math:`\bar\theta_t = \bar\theta_{t-1} + (\theta_t - \bar\theta_{t-1}) / n_t`; or ``ema`` — the
    exponential moving average :math:`\bar\theta_t = d\\,\bar\theta_{t-1} + (1 - d)\\,\theta_t` with
    ``decay`` :math:`d`, started as a copy of the parameters after update ``start + 1`` (no bias correction
    and no warm-up of the decay: PyTorch's ``AveragedModel`` with ``get_ema_multi_avg_fn`` and timm's
    ``ModelEmaV2`` convention). ``start``: updates before averaging begins — a number, or a duration like
    ``"75%"`` (of ``train.steps``) or ``"2 epochs"``; default ``"75%"`` for ``swa``, ``0`` for ``ema``.
    ``decay`` (``ema`` only): in (0, 1), default 0.999.
    """

    kind: Literal["swa", "ema"] = "swa"
    start: int | str | None = None
    decay: float | None = None


@dataclasses.dataclass(frozen=True)
class EarlyStopConfig:
    """Stop a run when the validation metric stops improving (``train.early_stop``; Keras' ``EarlyStopping``,
    HF's ``EarlyStoppingCallback``).

    ``metric``: ``loss`` (lower is better), ``accuracy`` or ``r2`` (higher is better), read on the
    validation split at every evaluation (``val_<metric>``; the test split only without one, with a
    warning, as for any choice). The run stops after ``patience`` evaluations in a row without an
    improvement of more than ``min_delta`` over the best so far (status ``early_stopped``); the best
    evaluation is in ``summary.json``'s ``best_eval``.
    """

    metric: str = "loss"
    patience: int = 3
    min_delta: float = 0.0


#: ``train.report_to``: where a run's records go besides ``metrics.jsonl`` -> (module, pip extra).
LOGGERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Length of the run (optimizer updates), cadences (in optimizer updates) and run behaviour.

    ``steps``, ``log_every``, ``eval_every`` and ``checkpoint_every`` are a number of optimizer updates or a
    duration: ``"5 epochs"``, ``"60000 examples"``, ``"500 steps"``, and for the cadences also ``"10%"``
    (of ``train.steps``). The config keeps the text; :func:`train_counts` turns it into updates once the
    training set's size is known (:func:`lrjax.to_steps`: an epoch is ``floor(N / (batch x accumulation))``
    updates).

    ``report_to``: loggers that receive every record of ``metrics.jsonl`` (rate and momentum included):
    ``tensorboard`` (event files in ``<run>/tensorboard``), ``wandb`` (offline unless ``WANDB_MODE`` says
    otherwise: ``<run>/wandb``, ``wandb sync`` uploads it), ``mlflow`` (the tracking URI of
    ``MLFLOW_TRACKING_URI``, else a local store in ``<run>/mlruns``); each needs its package (``pip install
    'lrjax[wandb]'``), checked when the config is validated. ``tensorboard: true`` is ``report_to:
    [tensorboard]``. ``average`` (default ``null``): averaged weights evaluated beside the trained ones
    (:class:`AverageConfig`). ``early_stop`` (default ``null``): :class:`EarlyStopConfig`.

    ``precision``: ``float32`` (default) or ``bf16`` — the forward and backward passes in bfloat16
    (parameters and inputs cast at the start of the step), the parameters, the gradients they receive, the
    optimizer state, the schedule and the loss in float32 (no loss scaling: bfloat16 has float32's range).
    """

    steps: int | str = 600
    seed: int = 0
    log_every: int | str = 20
    eval_every: int | str = 100
    checkpoint_every: int | str = 200
    keep_checkpoints: int = 3
    on_nonfinite: Literal["stop", "skip"] = "stop"
    progress: bool = True
    tensorboard: bool = False
    compilation_cache: bool = True
    compilation_cache_dir: str | None = None
    average: AverageConfig | None = None
    early_stop: EarlyStopConfig | None = None
    precision: Literal["float32", "bf16"] = "float32"
    report_to: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run. ``schedule`` is a schedule spec (see :func:`lrjax.from_spec`); ``plateau`` (optional)
    holds the arguments of :func:`lrjax.reduce_on_plateau`, fed by the validation loss (the test loss
    without a validation split) at every evaluation.

    ``loss``: ``cross_entropy`` (integer labels; accuracy is reported), ``mse`` (float targets; R² in
    the summary) or ``"MODULE:NAME"``, a function ``loss(outputs, targets)`` returning per-example losses
    or their mean (found like ``model.factory``). ``name``: the run's name (default: from the data, the
    model, the optimizer and the schedule, see :func:`run_name`).
    """

    name: str | None = None
    loss: str = "cross_entropy"
    schedule: dict[str, Any] = dataclasses.field(default_factory=_default_schedule)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    plateau: dict[str, Any] | None = None
    # Written by `lrjax train --find-lr` (finder helper, lrjax.finder): the range test that set the
    # schedule's peak (method, lr, sweep settings). A record only; training ignores it.
    find_lr: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- parsing

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType) and set(typing.get_args(tp)) == {int, str}:
        return "a whole number of updates or a duration like '5 epochs', '500 steps' or '60000 examples'"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against type ``tp`` (ints accepted for floats); raises ConfigError."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{path} must be {_type_name(tp)}, got {path}={value!r} ({type(value).__name__})")
    if tp is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(choices[0]):
            raise ConfigError(
                f"{path} must be one of {', '.join(repr(c) for c in choices)}, got {path}={value!r}"
                f"{closest(str(value), [str(c) for c in choices])}"
            )
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, path)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else bad
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        (elem, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, elem, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # pragma: no cover - schema bug


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in fields:
            where = f"in {path!r}" if path else "at the top level"
            raise ConfigError(
                f"unknown key {full!r}{closest(str(key), fields)}; valid keys {where}: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None, *, root: str | os.PathLike | None = None) -> Config:
    """Validate a nested dict (e.g. from YAML) into a :class:`Config`.

    ``root``: the folder of the config file; a ``model.factory`` or ``loss`` module found there (or, next,
    in the working directory) is recorded by its absolute file path (``/abs/dir/mymodel.py:Net``), so the
    config written to a run directory finds it again from anywhere (``--resume``).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(data).__name__}: {data!r}")
    cfg = _build(Config, data, "")
    opt = data.get("optimizer")
    if cfg.optimizer.name != OptimizerConfig.name and not (isinstance(opt, Mapping) and "args" in opt):
        cfg = dataclasses.replace(cfg, optimizer=_default_args_for(cfg.optimizer))
    cfg = _resolve_references(cfg, root)
    validate(cfg)
    return cfg


LOSSES = ("cross_entropy", "mse")
_REFERENCE = re.compile(r"^(?P<module>[^:]+):(?P<name>[A-Za-z_][A-Za-z0-9_.]*)$")


def parse_reference(ref: str, path: str) -> tuple[str, str]:
    """``"MODULE:NAME"`` -> ``(MODULE, NAME)``; a ConfigError naming ``path`` otherwise."""
    m = _REFERENCE.match(ref.strip()) if isinstance(ref, str) else None
    if m is None:
        raise ConfigError(
            f"{path} must be 'MODULE:NAME' (a dotted module or a path to a .py file, a colon, then the name "
            f"of a function or class in it, e.g. 'mymodel:Net' or 'models/net.py:Net'), got {path}={ref!r}"
        )
    return m["module"], m["name"]


def _module_file(module: str, folder: str) -> str | None:
    """The file that ``module`` (dotted name or ``.py`` path) names relative to ``folder``, if it exists."""
    if module.endswith(".py"):
        cand = module if os.path.isabs(module) else os.path.join(folder, module)
        return os.path.abspath(cand) if os.path.isfile(cand) else None
    base = os.path.join(folder, *module.split("."))
    for cand in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(cand):
            return os.path.abspath(cand)
    return None


def _resolve_reference(ref: str, path: str, root: str | os.PathLike | None) -> str:
    module, name = parse_reference(ref, path)
    for folder in ([os.fspath(root)] if root is not None else []) + [os.getcwd()]:
        found = _module_file(module, folder)
        if found is not None:
            return f"{found}:{name}"
    return ref


def _resolve_references(cfg: Config, root: str | os.PathLike | None) -> Config:
    model, loss = cfg.model, cfg.loss
    if model.factory is not None:
        model = dataclasses.replace(model, factory=_resolve_reference(model.factory, "model.factory", root))
    if loss not in LOSSES:
        if ":" not in loss:
            raise ConfigError(f"loss must be one of {', '.join(map(repr, LOSSES))} or 'MODULE:NAME' (your own "
                              f"function loss(outputs, targets)), got loss={loss!r}{closest(loss, LOSSES)}")
        loss = _resolve_reference(loss, "loss", root)
    return dataclasses.replace(cfg, model=model, loss=loss)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain dicts/lists (YAML-safe); ``config_from_dict`` reads it back."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b.c=value"`` -> ``("a.b.c", value)``, the value parsed as YAML (``1e-2`` is a number); a
    :class:`ConfigError` names the item for a missing ``=``, an empty key part or unparsable YAML."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value (e.g. train.steps=100), got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set expects a dotted key like train.steps, got {key!r}")
    try:
        return key, _yaml.load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} as YAML: {e}") from None


class DroppedArgumentsWarning(UserWarning):
    """``--set optimizer.name=...`` dropped ``optimizer.args`` that the new optimizer does not take."""


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested dict (each value parsed as YAML).

    A mapping the dict does not have yet starts as its default (``--set schedule.peak=0.01`` on the
    default config edits the default schedule). Unknown keys are left for :func:`config_from_dict` to
    reject with the key path.

    ``optimizer.name`` set here drops the ``optimizer.args`` the new optax optimizer does not take (they
    belong to the old one: AdamW's default ``weight_decay`` for ``sgd``), with a one-line
    :class:`DroppedArgumentsWarning`; arguments set by these same overrides are kept (and checked).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     apply_overrides({}, ["optimizer.name=sgd"])["optimizer"]["args"]
    {}
    >>> print(w[0].message)
    --set optimizer.name=sgd: dropped optimizer.args.weight_decay=0.0001 (an argument of adamw that optax.sgd does not take)
    """
    defaults = config_to_dict(Config())
    out = copy.deepcopy(data)
    explicit: list[str] = []
    old_name: Any = None
    for item in overrides:
        key, value = parse_override(item)
        explicit.append(key)
        if key == "optimizer.name" and old_name is None:
            opt = out.get("optimizer")
            old_name = opt.get("name", OptimizerConfig.name) if isinstance(opt, dict) else OptimizerConfig.name
        node = out
        default: Any = defaults
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            default = default.get(p) if isinstance(default, dict) else None
            nxt = node.get(p)
            if nxt is None:
                # Not in the file: start from the default (so --set schedule.peak=... edits the default schedule).
                nxt = node[p] = copy.deepcopy(default) if isinstance(default, dict) else {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i + 1])} is {nxt!r}, not a mapping")
            node = nxt
        node[parts[-1]] = value
    if old_name is not None:
        _drop_foreign_args(out, old_name, explicit)
    return out


def optimizer_arguments(name: str) -> tuple[str, ...] | None:
    """The keyword arguments of ``optax.<name>`` besides ``learning_rate`` (None: it takes any).

    >>> optimizer_arguments("sgd")
    ('momentum', 'nesterov', 'accumulator_dtype')
    """
    params = inspect.signature(optimizer_factory(name)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.name != "learning_rate"
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _drop_foreign_args(data: dict[str, Any], old_name: Any, explicit: list[str]) -> None:
    """After ``--set optimizer.name=NEW``: drop (with a note) the args NEW does not take, unless set explicitly."""
    opt = data.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("args"), dict) or "optimizer.args" in explicit:
        return
    name = opt.get("name")
    try:
        accepted = optimizer_arguments(name)
    except ConfigError:  # an unknown name: validation says so
        return
    if accepted is None:
        return
    args = opt["args"]
    foreign = [k for k in args if k not in accepted and k != "learning_rate" and f"optimizer.args.{k}" not in explicit]
    if not foreign:
        return
    shown = ", ".join(f"optimizer.args.{k}={args[k]!r}" for k in foreign)
    warnings.warn(f"--set optimizer.name={name}: dropped {shown} (an argument of {old_name} that optax.{name} does "
                  "not take)", DroppedArgumentsWarning, stacklevel=3)
    opt["args"] = {k: v for k, v in args.items() if k not in foreign}


def _default_args_for(o: OptimizerConfig) -> OptimizerConfig:
    """``o`` with the default ``args`` (AdamW's) cut to those ``optax.<o.name>`` takes: a config naming another
    optimizer and no args gets no argument it would refuse."""
    try:
        accepted = optimizer_arguments(o.name)
    except ConfigError:  # an unknown name: validation says so
        return o
    if accepted is None:
        return o
    return dataclasses.replace(o, args={k: v for k, v in o.args.items() if k in accepted})


def _check_optimizer_args(o: OptimizerConfig) -> None:
    """Every ``optimizer.args`` key is an argument of ``optax.<name>``; else a ConfigError that says what to
    write."""
    accepted = optimizer_arguments(o.name)
    if accepted is None:
        return
    bad = [k for k in o.args if k not in accepted]
    if bad:
        keep = {k: v for k, v in o.args.items() if k not in bad}
        write = _yaml.dump(keep, default_flow_style=True, width=1000).strip()
        raise ConfigError(
            f"optimizer.args.{bad[0]}: optax.{o.name} takes no argument {bad[0]!r}{closest(bad[0], accepted)}; its "
            f"arguments are {', '.join(accepted)}. Remove it: --set 'optimizer.args={write}'")


def read_yaml_mapping(path: str | os.PathLike, what: str, example: str,
                      error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """The mapping in a YAML file (empty file: ``{}``); ``error`` names the path for a missing file, bad
    YAML or a top level that is not a mapping."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise error(f"{what} file {p!r} does not exist (expected a YAML file like {example})")
    with open(p) as fh:
        try:
            loaded = _yaml.load(fh)
        except yaml.YAMLError as e:
            raise error(f"{p}: not valid YAML: {_yaml.describe_error(e)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise error(f"{p}: a {what} must be a mapping of keys to values, got {type(loaded).__name__}")
    return loaded


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (``None``: the defaults), apply ``key=value`` overrides, validate.

    Module references (``model.factory``, ``loss``) are looked up in the file's folder first.
    """
    data = read_yaml_mapping(path, "config", "configs/cosine.yaml") if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    root = os.path.dirname(os.path.abspath(os.fspath(path))) if path is not None else None
    return config_from_dict(data, root=root)


def run_name(cfg: Config, data_name: str | None = None, model_name: str | None = None) -> str:
    """``cfg.name``, or one made of the data, the model, the optimizer and the schedule family.

    >>> run_name(Config(), "digits")
    'digits-mlp-adamw-warmup-cosine_decay'
    >>> run_name(Config(name="mine"), "digits")
    'mine'
    """
    if cfg.name:
        return cfg.name
    data = data_name or source_name(cfg.data.source)
    if model_name:
        model = model_name
    elif cfg.model.factory is not None:
        model = parse_reference(cfg.model.factory, "model.factory")[1].split(".")[-1]
    else:
        model = cfg.model.kind
    sched = cfg.schedule.get("name", "schedule") if isinstance(cfg.schedule, Mapping) else "schedule"
    if sched == "warmup" and isinstance(cfg.schedule.get("schedule"), Mapping):
        sched = f"warmup-{cfg.schedule['schedule'].get('name', 'schedule')}"
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", f"{data}-{model}-{cfg.optimizer.name}-{sched}").strip("_")


def source_name(source: str) -> str:
    """The data's name in run names: the file or folder name of ``source`` without ``.npz``."""
    base = os.path.basename(os.path.normpath(os.path.expanduser(source)))
    return base[:-4] if base.endswith(".npz") else base


# ----------------------------------------------------------------------------- value checks

class SelectionOnTestSetWarning(UserWarning):
    """Something chooses (a sweep's ranking, reduce-on-plateau, ...) and there is no validation split, so
    the test set chooses: its figures are then no longer an unbiased estimate."""


def with_validation(cfg: Config, *, selects: bool = False) -> Config:
    """``cfg`` with ``data.validation_fraction`` resolved: ``null`` becomes 0.1 when something chooses on
    the evaluation (``selects``, or a ``plateau``), else 0. An explicit 0 where something chooses warns
    (:class:`SelectionOnTestSetWarning`): the test set then selects.

    >>> with_validation(Config(), selects=True).data.validation_fraction
    0.1
    >>> with_validation(Config()).data.validation_fraction
    0.0
    """
    chooses = selects or cfg.plateau is not None or cfg.train.early_stop is not None
    v = cfg.data.validation_fraction
    if v is None:
        v = 0.1 if chooses else 0.0
    elif v == 0 and chooses:
        what = "the selection" if selects else ("reduce-on-plateau" if cfg.plateau is not None else "early stopping")
        warnings.warn(f"data.validation_fraction=0: {what} looks at the test set, whose figures are then no "
                      "longer an unbiased estimate; hold out a validation split (e.g. 0.1)", SelectionOnTestSetWarning,
                      stacklevel=2)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, validation_fraction=float(v)))


def _positive(value: float, path: str, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise fail("", path, value, ">= 0" if allow_zero else "> 0", ConfigError)


def _walk_spec(spec: Any, path: str):
    """Yield (path, key, value, node) for every key of a nested schedule spec."""
    if isinstance(spec, Mapping):
        for k, v in spec.items():
            yield f"{path}.{k}", k, v, spec
            yield from _walk_spec(v, f"{path}.{k}")
    elif isinstance(spec, (list, tuple)):
        for i, v in enumerate(spec):
            yield from _walk_spec(v, f"{path}[{i}]")


def schedule_of(spec: Any, where: str, **durations: Any) -> Any:
    """The :class:`lrjax.Schedule` of a spec at config key ``where``, its durations resolved
    (:func:`resolve_durations` keywords); what it refuses is a :class:`ConfigError` naming the key."""
    try:
        return from_spec(resolve_durations(spec, where=where, **durations), where=where)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def validate(cfg: Config) -> None:
    """Value checks that need no data: positivity, cadences, the schedule spec, warmup vs run length,
    optional packages the config asks for.

    When ``train.steps`` counts epochs or examples the run's length is known only with the data: the
    schedule is then checked when it is built (:func:`lrjax.engine.build_experiment`), still before a
    run directory exists.
    """
    t, d, o, m = cfg.train, cfg.data, cfg.optimizer, cfg.model
    counts = _known_counts(cfg)
    total = counts["steps"]
    _positive(t.seed, "train.seed", allow_zero=True)
    if d.seed is not None:
        _positive(d.seed, "data.seed", allow_zero=True)
    if d.validation_fraction is not None and not 0.0 <= d.validation_fraction < 1.0:
        raise fail("", "data.validation_fraction", d.validation_fraction,
                   "in [0, 1) (or null: 0.1 where something chooses, else 0)", ConfigError)
    if m.args and m.factory is None:
        raise ConfigError("model.args are the arguments of model.factory; set model.factory: 'MODULE:NAME' "
                          f"(or use the built-in kinds' own keys), got model.args={m.args!r}")
    if m.factory is not None:
        for k in ("rngs",):
            if k in m.args:
                raise ConfigError(f"model.args.{k}: lrjax passes {k}= itself (from train.seed)")
    _positive(t.keep_checkpoints, "train.keep_checkpoints")
    _positive(d.batch_size, "data.batch_size")
    _positive(d.eval_batch_size, "data.eval_batch_size")
    if not 0.0 < d.test_fraction < 1.0:
        raise fail("", "data.test_fraction", d.test_fraction, "in (0, 1)", ConfigError)
    if d.num_classes is not None and d.num_classes < 2:
        raise fail("", "data.num_classes", d.num_classes, "an integer >= 2 (or null: from the labels)", ConfigError)
    _positive(o.accumulation_steps, "optimizer.accumulation_steps")
    if o.clip_norm is not None:
        _positive(o.clip_norm, "optimizer.clip_norm")
    if o.base_batch_size is not None:
        _positive(o.base_batch_size, "optimizer.base_batch_size")
    if o.batch_scaling != "none" and o.base_batch_size is None:
        raise ConfigError(
            f"optimizer.batch_scaling={o.batch_scaling!r} needs optimizer.base_batch_size (the batch size the "
            "schedule's rates were tuned for)"
        )
    _check_sequence_keys(cfg)
    _check_early_stop(t.early_stop)
    for i, w in enumerate(m.hidden):
        _positive(w, f"model.hidden[{i}]")
    for i, w in enumerate(m.channels):
        _positive(w, f"model.channels[{i}]")
    _positive(m.blocks, "model.blocks")
    if m.kind in ("cnn", "resnet") and not m.channels:
        raise ConfigError(f"model.channels must not be empty for model.kind={m.kind!r}")
    _check_optimizer_name(o.name)
    if "learning_rate" in o.args:
        raise ConfigError(
            "optimizer.args.learning_rate: the learning rate is the top-level 'schedule' key "
            "(a spec, or {name: constant, value: 0.01})"
        )
    _check_optimizer_args(o)
    if o.name in SCHEDULE_FREE:
        _check_schedule_free(o)
    resolve_average(cfg)
    if total is not None:  # else checked when the data gives the run's length (build_experiment)
        # tokens are placeholders here, as epochs (no batch size yet); they need a context: data.context, or for
        # another source than text a .npz of token windows gives it once loaded (build_experiment checks it)
        ctx = d.context if d.context is not None or d.source == "text" else 1
        schedule_of(cfg.schedule, "schedule", total_steps=total, context=ctx)
        for k, v in o.args.items():
            if isinstance(v, Mapping):
                schedule_of(v, f"optimizer.args.{k}", total_steps=total, context=ctx)
        for path, key, value, _ in _walk_spec(resolve_durations(cfg.schedule, total_steps=total, context=ctx),
                                              "schedule"):
            if key == "warmup_steps" and isinstance(value, (int, float)) and value > total:
                raise ConfigError(
                    f"{path}={value!r} is longer than the run (train.steps={t.steps}); shorten the warmup or "
                    "train longer"
                )
    if cfg.plateau is not None and not isinstance(cfg.plateau, Mapping):  # pragma: no cover - typed above
        raise ConfigError("plateau must be a mapping of reduce_on_plateau arguments or null")
    _check_optional_packages(cfg)


def _check_early_stop(e: EarlyStopConfig | None) -> None:
    if e is None:
        return
    metrics = ("loss", "accuracy", "r2", "bits_per_token")
    name = e.metric[4:] if e.metric.startswith("val_") else e.metric
    if name not in metrics:
        raise ConfigError(f"train.early_stop.metric must be one of {', '.join(metrics)} (on the validation split), "
                          f"got train.early_stop.metric={e.metric!r}{closest(e.metric, metrics)}")
    _positive(e.patience, "train.early_stop.patience")
    if not e.min_delta >= 0:
        raise fail("", "train.early_stop.min_delta", e.min_delta, ">= 0", ConfigError)


def _check_sequence_keys(cfg: Config) -> None:
    """The text source's and the transformer's keys: windows that fit the model, heads that divide it."""
    d, m = cfg.data, cfg.model
    if d.context is not None:
        _positive(d.context, "data.context")
    if d.eval_windows is not None:
        _positive(d.eval_windows, "data.eval_windows")
    if d.source == "text" and d.context is None:
        raise ConfigError("data.source='text' needs data.context: the tokens (bytes) of each training window, "
                          "e.g. data.context=128")
    if d.path is not None and d.source != "text":
        raise ConfigError(f"data.path is the text source's file or folder; set data.source: text (or give the "
                          f"data as data.source), got data.path={d.path!r} with data.source={d.source!r}")
    for k in ("d_model", "layers", "heads"):
        _positive(getattr(m, k), f"model.{k}")
    if m.context is not None:
        _positive(m.context, "model.context")
    if m.kind == "transformer" and m.factory is None:
        if m.d_model % m.heads:
            raise ConfigError(f"model.d_model={m.d_model} must be divisible by model.heads={m.heads} (each head "
                              f"gets d_model / heads dimensions); e.g. model.heads="
                              f"{max(h for h in range(1, m.heads + 1) if m.d_model % h == 0)}")
        if m.context is not None and d.context is not None and d.context > m.context:
            raise ConfigError(f"data.context={d.context} is longer than the model's positions (model.context="
                              f"{m.context}); set model.context >= {d.context} or shorten data.context")


# ----------------------------------------------------------------------------- optional packages

#: Config keys that need a package lrjax does not depend on: key -> (module, pip extra).
OPTIONAL_PACKAGES = {"train.tensorboard": ("tensorboard", "tensorboard")}


def loggers(cfg: Config) -> tuple[str, ...]:
    """The loggers a run writes to (``train.report_to``, with ``train.tensorboard: true`` as tensorboard)."""
    out = tuple(dict.fromkeys(cfg.train.report_to + (("tensorboard",) if cfg.train.tensorboard else ())))
    return out


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import; a module set to None in sys.modules
        return False


def _check_optional_packages(cfg: Config) -> None:
    """A :class:`ConfigError` naming the key and the install command when a key asks for a package that is
    not installed (before any run directory exists, not in the middle of a run)."""
    for key, (module, extra) in OPTIONAL_PACKAGES.items():
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) and not _installed(module):
            raise ConfigError(f"{key}=true needs the {module} package, which is not installed: "
                              f"pip install 'lrjax[{extra}]' (or set {key}=false)")
    for i, name in enumerate(cfg.train.report_to):
        if name not in LOGGERS:
            raise ConfigError(f"train.report_to[{i}] must be one of {', '.join(LOGGERS)}, got {name!r}"
                              f"{closest(name, LOGGERS)}")
        module, extra = LOGGERS[name]
        if not _installed(module):
            raise ConfigError(f"train.report_to: {name} needs the {module} package, which is not installed: "
                              f"pip install 'lrjax[{extra}]' (or remove {name} from train.report_to)")


# ----------------------------------------------------------------------------- train.* counts

#: The ``train.*`` keys that count optimizer updates and accept durations ("5 epochs").
TRAIN_COUNTS = ("steps", "log_every", "eval_every", "checkpoint_every")


class TrainCounts(typing.NamedTuple):
    """``train.steps`` and the cadences in optimizer updates (:func:`train_counts`)."""

    steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int


def _count(cfg: Config, key: str, total: int | None, num_examples: int | None) -> int | None:
    """``train.<key>`` in optimizer updates; None when that needs ``num_examples`` (or ``total``) and it is
    not known. A text that is no duration, ``%`` for ``train.steps`` or less than one update is a ConfigError."""
    value, where = getattr(cfg.train, key), f"train.{key}"
    if not isinstance(value, str):
        _positive(value, where)
        return int(value)
    if not _DURATION.match(value.strip()):
        units = "'10%' (of train.steps), " if key != "steps" else ""
        raise ConfigError(f"{where} must be a number of updates or a duration like {units}'5 epochs', '500 steps' "
                          f"or '60000 examples', got {where}={value!r}")
    amount, unit = parse_duration(value, where)
    if amount <= 0:
        raise ConfigError(f"{where}={value!r} must be more than 0")
    if unit == "fraction":
        if key == "steps":
            raise ConfigError(f"{where}={value!r}: a percentage is of train.steps itself; give updates or a "
                              "duration like '5 epochs', '500 steps' or '60000 examples'")
        if total is None:
            return None
    if unit in ("epochs", "examples") and num_examples is None:
        return None
    if unit == "tokens" and cfg.data.context is None:
        if num_examples is None and cfg.data.source != "text":
            return None  # a .npz of token windows gives the context when it is loaded
        raise ConfigError(f"{where}={value!r}: a duration in tokens needs the tokens per example: set data.context "
                          "(the window length)")
    return _to_steps(amount, unit, total_steps=total or 0, batch_size=cfg.data.batch_size,  # > 0, or it raises
                     accumulation_steps=cfg.optimizer.accumulation_steps, num_examples=num_examples,
                     where=f"{where}={value!r}", context=cfg.data.context)


def _known_counts(cfg: Config, num_examples: int | None = None) -> dict[str, int | None]:
    """Each of :data:`TRAIN_COUNTS` in updates, None where it needs the data's size (or a total that does)."""
    total = _count(cfg, "steps", None, num_examples)
    return {"steps": total, **{k: _count(cfg, k, total, num_examples) for k in TRAIN_COUNTS[1:]}}


def train_counts(cfg: Config, num_examples: int | None = None) -> TrainCounts:
    """``train.steps``, ``log_every``, ``eval_every`` and ``checkpoint_every`` in optimizer updates.

    A number is used as it is; a duration goes through :func:`lrjax.to_steps` with ``data.batch_size`` and
    ``optimizer.accumulation_steps``: ``"5 epochs"`` is ``round(5 * floor(N / (B * k)))`` updates for ``N =
    num_examples`` training examples (the validation split held out), ``"60000 examples"`` is
    ``round(60000 / (B * k))``, ``"10%"`` (cadences only) is ``round(0.1 * steps)``. Every place that needs
    the run's length as a number goes through here (or :func:`train_steps`).

    >>> cfg = load_config(None, ["train.steps=5 epochs", "train.eval_every=1 epoch", "data.batch_size=32"])
    >>> cfg.train.steps                        # the config keeps the text
    '5 epochs'
    >>> train_counts(cfg, num_examples=1000)   # 1000 // 32 = 31 updates per epoch
    TrainCounts(steps=155, log_every=20, eval_every=31, checkpoint_every=200)
    >>> train_counts(cfg)
    Traceback (most recent call last):
    ...
    lrjax.engine._config.ConfigError: train.steps='5 epochs' counts epochs or examples of the training set, whose size is known once the data is loaded (num_examples=None)
    """
    known = _known_counts(cfg, num_examples)
    for k, v in known.items():
        if v is None:
            raise ConfigError(f"train.{k}={getattr(cfg.train, k)!r} counts epochs or examples of the training set, "
                              f"whose size is known once the data is loaded (num_examples={num_examples})")
    return TrainCounts(**known)


def train_steps(cfg: Config, num_examples: int | None = None) -> int:
    """``train.steps`` in optimizer updates (:func:`train_counts`): the one way to read the run's length.

    >>> train_steps(load_config(None, ["train.steps=2 epochs", "data.batch_size=100"]), num_examples=1000)
    20
    """
    total = _count(cfg, "steps", None, num_examples)
    if total is None:
        train_counts(cfg, num_examples)  # raises, naming the key
    return int(total)  # type: ignore[arg-type]


def resolve_train(cfg: Config, num_examples: int) -> Config:
    """``cfg`` with :data:`TRAIN_COUNTS` in optimizer updates (:func:`train_counts`): the config a run
    built on data of ``num_examples`` training examples follows (``Experiment.config``); the user's config
    keeps its durations (``config.yaml`` says ``'5 epochs'``, a resume on other data counts them again).

    >>> cfg = load_config(None, ["train.steps=3 epochs", "data.batch_size=50"])
    >>> resolve_train(cfg, 500).train.steps
    30
    >>> resolve_train(load_config(None, ["train.steps=1 epoch", "schedule.warmup_steps=50"]), 640)
    Traceback (most recent call last):
    ...
    lrjax.engine._config.ConfigError: schedule.warmup_steps=50 is longer than the run (train.steps=10); shorten the warmup or train longer
    """
    if all(not isinstance(getattr(cfg.train, k), str) for k in TRAIN_COUNTS):
        return cfg
    out = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_counts(cfg, num_examples)._asdict()))
    validate(out)  # what needed the run's length (a warmup longer than the run, ...) is checked now
    return out


_UNITS = {"%": "fraction", "steps": "steps", "step": "steps", "epochs": "epochs", "epoch": "epochs",
          "examples": "examples", "example": "examples", "tokens": "tokens", "token": "tokens"}

# Thousands, millions, billions (B or G) after a count: "20M tokens", "1.5K steps".
_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}

_DURATION = re.compile(r"^[0-9.]+(e[-+]?[0-9]+)?[kmbg]?\s*(%|\s[A-Za-z]+)$", re.IGNORECASE)


def parse_duration(text: str, where: str) -> tuple[float, str]:
    """``"10%"`` -> (0.1, "fraction"); ``"3 epochs"`` -> (3.0, "epochs"); ``"500 steps"``, ``"6e4 examples"``,
    ``"20M tokens"`` (a count may end in K, M, B or G: thousands, millions, billions)."""
    s = text.strip().lower()
    scale = 1.0
    if s.endswith("%"):
        num, unit = s[:-1], "%"
    else:
        parts = s.split()
        if len(parts) != 2 or parts[1] not in _UNITS:
            raise ConfigError(
                f"{where}={text!r}: a duration is a number of steps, or a string like '10%' (of train.steps), "
                "'3 epochs', '500 steps', '60000 examples' or '20M tokens'"
            )
        num, unit = parts
        if num[-1:] in _SUFFIXES:
            num, scale = num[:-1], _SUFFIXES[num[-1]]
    try:
        value = float(num) * scale
    except ValueError:
        raise ConfigError(f"{where}={text!r}: {num!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{where}={text!r}: a duration must be >= 0")
    return (value / 100.0 if unit == "%" else value), _UNITS[unit]


def resolve_durations(spec: Any, *, total_steps: int, batch_size: int | None = None,
                      accumulation_steps: int = 1, num_examples: int | None = None,
                      where: str = "schedule", context: int | None = None) -> Any:
    """Replace duration strings (``"10%"``, ``"2 epochs"``, ``"20M tokens"``) in a schedule spec by optimizer
    steps.

    Conversions go through :func:`lrjax.to_steps` (batch size and accumulation accounted for there).
    Epoch and example units need the data; before it is loaded (``num_examples=None``) they are left
    as they are. Token units need ``context`` (tokens per example, ``data.context``): without it they are a
    :class:`ConfigError` naming the key; before the batch size is known they are a placeholder, as epochs.

    >>> resolve_durations({"name": "wsd", "decay_steps": "1M tokens"}, total_steps=500, batch_size=32, context=128)
    {'name': 'wsd', 'decay_steps': 244}
    """
    if isinstance(spec, Mapping):
        return {k: resolve_durations(v, total_steps=total_steps, batch_size=batch_size,
                                     accumulation_steps=accumulation_steps, num_examples=num_examples,
                                     where=f"{where}.{k}", context=context) if k != "name" else v
                for k, v in spec.items()}
    if isinstance(spec, list):
        return [resolve_durations(v, total_steps=total_steps, batch_size=batch_size,
                                  accumulation_steps=accumulation_steps, num_examples=num_examples,
                                  where=f"{where}[{i}]", context=context) for i, v in enumerate(spec)]
    if isinstance(spec, str) and _DURATION.match(spec.strip()):  # not '1-sqrt' (a mode name)
        value, unit = parse_duration(spec, where)
        if unit == "tokens" and context is None:
            raise ConfigError(f"{where}={spec!r}: a duration in tokens needs the tokens per example (data.context "
                              "of a text or token-window source); give steps, '10%', epochs or examples instead")
        if (unit in ("epochs", "examples") and num_examples is None) or (unit == "tokens" and batch_size is None):
            return 1 if batch_size is None else spec  # placeholder for checks before the data is known
        return _to_steps(value, unit, total_steps=total_steps, batch_size=batch_size or 1,
                         accumulation_steps=accumulation_steps, num_examples=num_examples, where=where,
                         context=context)
    return spec


def _to_steps(value: float, unit: str, **kw: Any) -> int:
    try:
        return int(to_steps(value, unit, batch_size=kw["batch_size"],
                                  accumulation_steps=kw["accumulation_steps"],
                                  num_examples=kw["num_examples"], total_steps=kw["total_steps"],
                                  context=kw.get("context")))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{kw['where']}: {e}") from None


def resolve_average(cfg: Config, *, num_examples: int | None = None) -> tuple[str, int, float | None] | None:
    """``(kind, start, decay)`` of ``train.average`` with ``start`` in optimizer updates, or None when it is
    off. ``start`` defaults to ``"75%"`` (``swa``) or 0 (``ema``); a duration goes through
    :func:`resolve_durations` like a schedule's (epochs and examples need ``num_examples``: before the data
    is loaded they are not range-checked). ``decay``: 0.999 by default (``ema``), None for ``swa``.
    A :class:`ConfigError` names the key for a value that is impossible.

    >>> resolve_average(load_config(None, ["train.steps=600", "train.average={kind: swa}"]))
    ('swa', 450, None)
    >>> resolve_average(load_config(None, ["train.average={kind: ema, decay: 0.99, start: 10%}"]))
    ('ema', 60, 0.99)
    """
    a = cfg.train.average
    if a is None:
        return None
    steps, where = _count(cfg, "steps", None, num_examples), "train.average.start"
    start: Any = a.start if a.start is not None else ("75%" if a.kind == "swa" else 0)
    known = steps is not None
    if isinstance(start, str):
        if not _DURATION.match(start.strip()):
            raise ConfigError(f"{where} must be a number of updates or a duration like '75%' (of train.steps), "
                              f"'2 epochs' or '500 steps', got {where}={start!r}")
        unit = parse_duration(start, where)[1]
        context = cfg.data.context
        later = num_examples is None and (unit in ("epochs", "examples") or  # the data gives the size, or
                                          (unit == "tokens" and context is None and cfg.data.source != "text"))
        if later and unit == "tokens":
            context = 1  # placeholder: a .npz of token windows gives the context when it is loaded
        known = known and not later
        if not known and steps is None and unit == "fraction":
            start = 0  # a share of a run whose length the data gives: checked when it is known
        else:
            start = resolve_durations(start, total_steps=steps or 0,
                                      batch_size=cfg.data.batch_size if known else None,
                                      accumulation_steps=cfg.optimizer.accumulation_steps,
                                      num_examples=num_examples, where=where, context=context)
    if start < 0:
        raise fail("", where, a.start, ">= 0 updates", ConfigError)
    if known and start >= steps:
        raise ConfigError(f"{where}={a.start!r} ({start} updates) must be below train.steps={steps}: the average "
                          f"holds the updates after the first {start}, and there would be none")
    if a.kind == "swa":
        if a.decay is not None:
            raise ConfigError(f"train.average.decay is the decay of kind: ema; kind: swa is an equal-weight mean "
                              f"and takes none, got train.average.decay={a.decay!r}")
        return "swa", int(start), None
    decay = 0.999 if a.decay is None else a.decay
    if not 0.0 < decay < 1.0:
        raise fail("", "train.average.decay", decay, "in (0, 1) (e.g. 0.999)", ConfigError)
    return "ema", int(start), float(decay)


def _check_schedule_free(o: OptimizerConfig) -> None:
    """Schedule-free's rules: the rate (warmup included) is the top-level schedule, and ``b1`` is a constant
    in (0, 1] (the evaluation point is recovered from the iterates with it)."""
    if "warmup_steps" in o.args:
        raise ConfigError(
            f"optimizer.args.warmup_steps: {o.name}'s own warmup would hide the rate it uses from lrjax (the logged "
            "lr, the range test, a sweep); warm up in the top-level schedule instead: {name: warmup, warmup_steps: "
            "'5%', schedule: {name: constant, value: 0.0025}}"
        )
    if o.cycle_momentum:
        raise ConfigError(f"optimizer.cycle_momentum: {o.name} needs a constant b1 (its evaluation point is "
                          "recovered from its iterates with b1); set optimizer.cycle_momentum: false")
    b1 = o.args.get("b1")
    if isinstance(b1, Mapping):
        raise ConfigError(f"optimizer.args.b1: {o.name} needs a constant b1 in (0, 1] (its evaluation point is "
                          f"recovered from its iterates with b1), not a schedule, got optimizer.args.b1={b1!r}")
    if b1 is not None and (isinstance(b1, bool) or not isinstance(b1, (int, float)) or not 0 < b1 <= 1):
        raise fail("", "optimizer.args.b1", b1, f"a number in (0, 1] for {o.name}", ConfigError)


def _check_optimizer_name(name: str) -> None:
    valid = _OPTIMIZERS + SCHEDULE_FREE
    if name in SCHEDULE_FREE:
        fn = getattr(optax.contrib, name, None)
    else:
        fn = getattr(optax, name, None)
    if not (callable(fn) and name in valid):
        raise ConfigError(
            f"optimizer.name must be an optax optimizer, got optimizer.name={name!r}{closest(name, valid)}; "
            f"choices: {', '.join(valid)} (the schedule-free ones from optax.contrib)"
        )


def optimizer_factory(name: str) -> Any:
    """The optax factory ``optimizer.name`` names: ``optax.<name>``, or ``optax.contrib.<name>`` for the
    schedule-free ones (:data:`SCHEDULE_FREE`); a :class:`ConfigError` lists the valid names otherwise.

    >>> optimizer_factory("schedule_free_adamw").__name__
    'schedule_free_adamw'
    """
    _check_optimizer_name(name)

    if name in SCHEDULE_FREE:
        return getattr(optax.contrib, name)
    return getattr(optax, name)


#: optax.contrib's schedule-free optimizers (Defazio et al. 2024), evaluated at their averaged point
#: (``optax.contrib.schedule_free_eval_params``): ``optimizer.name`` accepts them beside optax's own.
SCHEDULE_FREE = ("schedule_free_adamw", "schedule_free_sgd")


# optax optimizers that take a learning rate as their first argument.
_OPTIMIZERS = (
    "adabelief", "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamaxw", "adamw", "adan", "amsgrad",
    "fromage", "lamb", "lars", "lion", "nadam", "nadamw", "noisy_sgd", "novograd", "optimistic_gradient_descent",
    "radam", "rmsprop", "sgd", "sm3", "yogi",
)
