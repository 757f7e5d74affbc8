"""Models: the built-in Flax NNX classifiers, your own factory, and the model's structure and init.

Built-in (``model.kind``), shapes from the data:

* :class:`MLP` — flatten, ``hidden`` ReLU layers, linear head.
* :class:`CNN` — one 3x3 conv + ReLU + 2x2 average pool per entry of ``channels``, then ``hidden``
  ReLU layers and a linear head. Images ``(H, W, C)`` or ``(H, W)`` (one channel).
* :class:`ResNet` — a small pre-activation ResNet for CIFAR-sized images: stem conv, ``blocks``
  residual blocks per stage (stride 2 between stages), GroupNorm, global average pool, linear head.

Your own (``model.factory: "MODULE:NAME"``, or ``model=`` in Python): any callable
``factory(rngs=nnx.Rngs(...), **args)`` returning an ``nnx.Module`` that maps a batch ``x`` to outputs;
``input_shape=`` and ``num_outputs=`` are passed when its signature takes them. State that is not an
``nnx.Param`` (BatchNorm statistics, dropout RNG counters) is carried beside the parameters and updated
by every training step; evaluation runs the module in ``.eval()`` mode.

:func:`model_structure` traces the model once (``nnx.eval_shape``: no parameters are computed) and
returns a :class:`ModelStructure`: the graph definitions for training and evaluation, and one compiled
program that initialises parameters from a key, so ``train``, ``sweep`` and ``find-lr`` start from the
same parameters and a fresh process pays one small compilation instead of building the model eagerly.

>>> from flax import nnx
>>> from lrjax.engine import make_model, ModelConfig
>>> m = make_model(ModelConfig(kind="mlp", hidden=(32,)), (8, 8, 1), 10, nnx.Rngs(0))
>>> m(jnp.zeros((2, 8, 8, 1))).shape
(2, 10)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrjax._checks import closest
from lrjax.engine._config import ConfigError, ModelConfig, _module_file, parse_reference
from lrjax.engine._transformer import transformer

__all__ = ["MLP", "CNN", "ResNet", "make_model", "init_params", "load_reference", "ModelStructure",
           "model_structure", "check_model_outputs", "output_shape"]


class MLP(nnx.Module):
    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *, rngs: nnx.Rngs):
        widths = [in_features, *hidden]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nnx.Linear(widths[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)


def _pool(x: jax.Array) -> jax.Array:
    # 2x2 average pool; odd sizes keep their last row/column out (like floor division).
    if x.shape[1] < 2 or x.shape[2] < 2:
        return x
    return nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


class CNN(nnx.Module):
    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 num_classes: int, *, rngs: nnx.Rngs):
        h, w, c = (*input_shape, 1) if len(input_shape) == 2 else input_shape
        self.add_channel = len(input_shape) == 2
        convs = []
        for ch in channels:
            convs.append(nnx.Conv(c, ch, kernel_size=(3, 3), padding="SAME", rngs=rngs))
            c = ch
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
        self.convs = nnx.List(convs)
        self.mlp = MLP(h * w * c, hidden, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.add_channel:
            x = x[..., None]
        for conv in self.convs:
            x = _pool(nnx.relu(conv(x)))
        return self.mlp(x)


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class _Block(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.GroupNorm(cin, num_groups=_groups(cin), rngs=rngs)
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=(stride, stride), padding="SAME", rngs=rngs)
        self.norm2 = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding="SAME", rngs=rngs)
        self.proj = (nnx.Conv(cin, cout, (1, 1), strides=(stride, stride), rngs=rngs)
                     if (stride != 1 or cin != cout) else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = nnx.relu(self.norm1(x))
        skip = self.proj(h) if self.proj is not None else x
        h = self.conv1(h)
        h = self.conv2(nnx.relu(self.norm2(h)))
        return skip + h


class ResNet(nnx.Module):
    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], blocks: int, num_classes: int,
                 *, rngs: nnx.Rngs):
        self.add_channel = len(input_shape) == 2
        c_in = 1 if self.add_channel else input_shape[-1]
        self.stem = nnx.Conv(c_in, channels[0], (3, 3), padding="SAME", rngs=rngs)
        layers = []
        c = channels[0]
        for i, ch in enumerate(channels):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(_Block(c, ch, stride, rngs=rngs))
                c = ch
        self.blocks = nnx.List(layers)
        self.norm = nnx.GroupNorm(c, num_groups=_groups(c), rngs=rngs)
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.add_channel:
            x = x[..., None]
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        x = nnx.relu(self.norm(x))
        return self.head(jnp.mean(x, axis=(1, 2)))


def make_model(cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, rngs: nnx.Rngs) -> nnx.Module:
    """Build the model named by ``cfg.kind`` for inputs of ``input_shape`` (no batch axis)."""
    shape = tuple(int(s) for s in input_shape)
    if cfg.kind == "mlp":
        return MLP(math.prod(shape), cfg.hidden, num_classes, rngs=rngs)
    if cfg.kind == "transformer":
        return transformer(rngs=rngs, d_model=cfg.d_model, layers=cfg.layers, heads=cfg.heads, context=cfg.context,
                           input_shape=shape, num_outputs=num_classes)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"model.kind={cfg.kind!r} needs image inputs (H, W, C) or (H, W), got input shape {shape} per example; "
            "use model.kind='mlp' or your own model.factory"
        )
    if cfg.kind == "cnn":
        return CNN(shape, cfg.channels, cfg.hidden, num_classes, rngs=rngs)
    return ResNet(shape, cfg.channels, cfg.blocks, num_classes, rngs=rngs)


def init_params(abstract: Any, key: jax.Array) -> Any:
    r"""Parameters for the abstract parameter tree of one of these models, from one random draw.

    Same distributions as the NNX layers' defaults: every ``kernel`` is LeCun normal (truncated at
    :math:`\pm 2\sigma`, :math:`\sigma = 1/(0.8796\sqrt{\text{fan\_in}})` with fan_in the product of all
    but the last axis), every ``bias`` zero, every norm ``scale`` one. All kernels come out of *one*
    ``truncated_normal`` call cut into pieces: XLA compiles one random-number program instead of one
    per layer shape (on CPU that cuts the initialisation's compile time by about 4x).

    >>> from flax import nnx
    >>> m = nnx.eval_shape(lambda: make_model(ModelConfig(kind="mlp", hidden=(32,)), (8, 8, 1), 10, nnx.Rngs(0)))
    >>> p = init_params(nnx.to_pure_dict(nnx.split(m, nnx.Param)[1]), jax.random.key(0))
    >>> p["layers"][0]["kernel"].shape, float(p["head"]["bias"].sum())
    ((64, 32), 0.0)
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    names = [str(getattr(path[-1], "key", path[-1])) for path, _ in flat]
    kernels = [leaf for (_, leaf), name in zip(flat, names) if name == "kernel"]
    z = jax.random.truncated_normal(key, -2.0, 2.0, (sum(math.prod(k.shape) for k in kernels),), jnp.float32)
    out, offset = [], 0
    for (path, leaf), name in zip(flat, names):
        if name == "kernel":
            size, fan_in = math.prod(leaf.shape), math.prod(leaf.shape[:-1])
            std = 1.0 / (_TRUNCATED_STD * math.sqrt(fan_in))
            out.append((z[offset:offset + size].reshape(leaf.shape) * std).astype(leaf.dtype))
            offset += size
        elif name in ("bias", "scale"):
            out.append(jnp.full(leaf.shape, 1.0 if name == "scale" else 0.0, leaf.dtype))
        else:
            raise ValueError(f"init_params: no initializer for parameter {jax.tree_util.keystr(path)}")
    return jax.tree_util.tree_unflatten(treedef, out)


# Standard deviation of a standard normal truncated to [-2, 2] (as in jax.nn.initializers.variance_scaling).
_TRUNCATED_STD = 0.87962566103423978


# ----------------------------------------------------------------------------- your own model

class _SiblingFinder(importlib.abc.MetaPathFinder):
    """While a referenced module executes: its folder's own modules (``import layers`` beside
    ``mymodel.py``), found *after* every installed package (the end of ``sys.meta_path``), so a ``tqdm.py``
    or ``optax.py`` lying there is never imported in place of the real one."""

    def __init__(self, folder: str):
        self.folder = folder

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if path is not None:  # a submodule: its package's __path__ decides, not this folder
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.folder])


# Modules loaded from files, by absolute path: loading the same file again returns the same module (the same
# classes, so the model structure cache and the compiled programs are shared).
_FILES: dict[str, Any] = {}


def _unclaimed(name: str, folder: str) -> bool:
    """Top-level module ``name`` of ``folder`` may be registered under its own name: it is not imported yet,
    and the import system finds no other module of that name (an installed ``optax`` for a file called
    ``optax.py``), so registering the file never takes another module's place in ``sys.modules``."""
    if name in sys.modules or name in sys.builtin_module_names:
        return False
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: nothing is imported
    except (ImportError, ValueError):  # pragma: no cover - a broken entry on sys.path
        return False
    if spec is None:
        return True
    mine = (os.path.join(folder, name + ".py"), os.path.join(folder, name, "__init__.py"))
    return spec.origin is not None and os.path.abspath(spec.origin) in mine  # the folder is on sys.path


def _exec(name: str, path: str, folder: str, package: str | None = None) -> Any:
    """Execute the file ``path`` as module ``name`` (a package when ``package``: its folder), registered in
    ``sys.modules`` only once it ran; its folder's modules are importable while it runs (after installed
    ones), and ``sys.path`` is never changed."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[package] if package is not None else None)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise ImportError(f"no loader for {path}")
    module = importlib.util.module_from_spec(spec)
    finder = _SiblingFinder(folder)
    sys.modules[name] = module
    sys.meta_path.append(finder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
    return module


def _import_file(path: str) -> Any:
    """The module in the file ``path``, loaded by that path (``importlib.util.spec_from_file_location``), never
    by searching ``sys.path``, which stays as it was.

    Inside a package (folders with ``__init__.py``) the packages above it are loaded from their own files, so
    relative imports work. The module is registered under its dotted name when that name is free, else
    under a private one (``_lrjax_ref_<hash>.<name>``): a file called ``optax.py`` does not replace optax.
    """
    path = os.path.abspath(path)
    if path in _FILES:
        return _FILES[path]
    folder, fname = os.path.split(path)
    parts = [] if fname == "__init__.py" else [fname[:-3]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):  # walk up the package chain
        folder, pkg = os.path.split(folder)
        parts.insert(0, pkg)
    single = len(parts) == 1 and fname != "__init__.py"
    top_file = path if single else os.path.join(folder, parts[0], "__init__.py")
    existing = sys.modules.get(parts[0])
    if (existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == top_file) \
            or _unclaimed(parts[0], folder):
        top = parts[0]  # free, or imported from this very file already (its folder is on sys.path)
    else:
        where = os.path.join(folder, parts[0])
        top = f"_lrjax_ref_{hashlib.sha1(where.encode()).hexdigest()[:10]}_{parts[0]}"
    if single:
        module = sys.modules.get(top) or _exec(top, path, folder)
    else:
        pkg_dir = os.path.join(folder, parts[0])
        module = sys.modules.get(top) or _exec(top, top_file, folder, package=pkg_dir)
        if len(parts) > 1:
            finder = _SiblingFinder(folder)
            sys.meta_path.append(finder)
            try:
                module = importlib.import_module(".".join([top, *parts[1:]]))
            finally:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(finder)
    _FILES[path] = module
    return module


def load_reference(ref: str, path: str = "model.factory") -> Callable:
    """The object ``"MODULE:NAME"`` names: ``MODULE`` a ``.py`` file (loaded by its path) or a dotted module
    (a file of that name under the working directory, else an installed module); ``NAME`` may be dotted
    (``module:Class.create``). ``sys.path`` is not changed: the module's folder never shadows lrjax's own
    dependencies (see :func:`_import_file`).

    Raises :class:`ConfigError` naming ``path`` when the module cannot be imported (or raises while it is),
    or has no such callable.
    """
    module_name, name = parse_reference(ref, path)
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ConfigError(f"{path}={ref!r}: no such file {module_name!r}")
            module = _import_file(module_name)
        else:
            local = _module_file(module_name, os.getcwd())
            module = _import_file(local) if local is not None else importlib.import_module(module_name)
    except ConfigError:
        raise
    except ImportError as e:
        raise ConfigError(f"{path}={ref!r}: cannot import {module_name!r} ({e}); looked in the config file's "
                          "folder, the working directory and the installed packages") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while it ran: say where, in one line
        where = f" ({e.filename}, line {e.lineno})" if isinstance(e, SyntaxError) else ""
        raise ConfigError(f"{path}={ref!r}: importing {module_name!r} raised {type(e).__name__}: "
                          f"{' '.join(str(e).split())}{where}") from e
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise ConfigError(f"{path}={ref!r}: {module_name!r} has no {name!r}{closest(part, names)}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{path}={ref!r}: {name!r} is a {type(obj).__name__}, not a callable")
    return obj


def _accepts(fn: Callable, name: str) -> bool:
    try:  # a class: its __init__ (NNX's metaclass shows a catch-all signature for the class itself)
        params = inspect.signature(fn.__init__ if isinstance(fn, type) else fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_factory(factory: Callable, rngs: nnx.Rngs, input_shape: tuple[int, ...], num_outputs: int,
                 args: dict[str, Any] | None = None) -> nnx.Module:
    """``factory(rngs=rngs, **args)`` plus ``input_shape``/``num_outputs`` when it takes them."""
    kw = dict(args or {})
    for k, v in (("input_shape", tuple(input_shape)), ("num_outputs", int(num_outputs))):
        if k not in kw and _accepts(factory, k):
            kw[k] = v
    module = factory(rngs=rngs, **kw)
    if not isinstance(module, nnx.Module):
        raise ConfigError(f"model factory {getattr(factory, '__name__', factory)!r} returned a "
                          f"{type(module).__name__}, not a flax.nnx.Module")
    return module


# ----------------------------------------------------------------------------- structure and init

@dataclasses.dataclass(frozen=True, eq=False)
class ModelStructure:
    """A model's structure, traced once: what the pure step functions close over.

    ``graphdef``/``eval_graphdef``: NNX graph definitions for training and for ``.eval()`` mode.
    ``params``: the abstract parameter tree (``nnx.Param`` leaves as ``ShapeDtypeStruct``), a plain nested
    dict; ``extra``: the abstract non-parameter state (BatchNorm statistics, RNG counters), ``{}`` for the
    built-in models. ``init(key) -> (params, extra, rng)`` splits raw key data in two, computes the
    parameters and state from one half and returns the other (the run's key), in one compiled program.
    """

    graphdef: Any
    eval_graphdef: Any
    params: Any
    extra: Any
    init: Callable[[jax.Array], tuple[Any, Any, jax.Array]]

    def apply(self, params: Any, extra: Any, x: jax.Array, *, train: bool = True) -> tuple[jax.Array, Any]:
        """``(outputs, new extra)`` of the model on the batch ``x`` (pure)."""
        if not self.extra:
            return nnx.merge(self.graphdef if train else self.eval_graphdef, params)(x), extra
        model = nnx.merge(self.graphdef if train else self.eval_graphdef, params, _wrap_keys(extra))
        out = model(x)
        if not train:
            return out, extra
        _, _, new = nnx.split(model, nnx.Param, ...)
        return out, _unwrap_keys(nnx.to_pure_dict(new))


def _unwrap_keys(tree: Any) -> Any:
    """Typed PRNG keys as raw uint32 key data (checkpoint- and vmap-friendly leaves)."""
    def f(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            if isinstance(x, jax.ShapeDtypeStruct):  # an abstract model's key
                return jax.eval_shape(jax.random.key_data, x)
            return jax.random.key_data(x)
        return x

    return jax.tree.map(f, tree)


def _wrap_keys(tree: Any) -> Any:
    """Back to typed keys: NNX's RNG streams keep them under the name ``key``."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for path, x in flat:
        last = getattr(path[-1], "key", None) if path else None
        out.append(jax.random.wrap_key_data(x) if last == "key" and x.dtype == jnp.uint32 else x)
    return jax.tree_util.tree_unflatten(treedef, out)


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _builtin_init(params_spec: tuple, key: jax.Array) -> tuple[Any, Any, jax.Array]:
    treedef, leaves = params_spec
    abstract = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in leaves])
    pkey, rng = jax.random.split(key)
    return init_params(abstract, pkey), {}, rng


def _freeze(tree: Any) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(x.shape), np.dtype(x.dtype)) for x in leaves)


# One compiled program per parameter structure, shared by every experiment of it (a sweep of 16 configs
# builds 16 experiments of one model).
_builtin_program = jax.jit(_builtin_init, static_argnums=0)


@functools.lru_cache(maxsize=64)
def _structure(build: _Builder) -> ModelStructure:
    abstract = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    graphdef, params, extra = nnx.split(abstract, nnx.Param, ...)
    params, extra = _abstract(nnx.to_pure_dict(params)), _abstract(_unwrap_keys(nnx.to_pure_dict(extra)))
    abstract.eval()
    eval_graphdef = nnx.split(abstract, nnx.Param, ...)[0]
    if build.builtin and build.factory.kind != "transformer" and not jax.tree.leaves(extra):
        # one truncated-normal draw cut into the layers (the transformer has its own GPT-2 initialisation)
        init = functools.partial(_builtin_program, _freeze(params))
    else:
        def make(key: jax.Array) -> tuple[Any, Any, jax.Array]:
            pkey, rng = jax.random.split(key)
            module = build(nnx.Rngs(pkey))
            _, p, e = nnx.split(module, nnx.Param, ...)
            return nnx.to_pure_dict(p), _unwrap_keys(nnx.to_pure_dict(e)), rng

        init = jax.jit(make)
    return ModelStructure(graphdef, eval_graphdef, params, extra, init)


def model_label(factory: Any) -> str:
    """How errors name a model: a built-in kind by its key (``model.kind='mlp'``), your own by its name
    (``model 'Net'``: the NAME of ``model.factory: "MODULE:NAME"``, or the factory's ``__name__``)."""
    if isinstance(factory, ModelConfig):
        if factory.factory is None:
            return f"model.kind={factory.kind!r}"
        return f"model {parse_reference(factory.factory, 'model.factory')[1]!r}"
    return f"model {getattr(factory, '__name__', type(factory).__name__)!r}"


# The batch the output check runs: 3 rows, a size no class count or target shape is likely to mimic.
_CHECK_BATCH = 3


def output_shape(structure: ModelStructure, input_shape: Sequence[int], dtype: Any = jnp.float32) -> tuple[int, ...]:
    """The shape of the model's output (evaluation mode) on a batch of 3 examples of ``input_shape`` (of
    ``dtype``: int32 for token windows), computed abstractly (``jax.eval_shape``: no parameter is made,
    nothing is compiled).

    >>> output_shape(model_structure(ModelConfig(hidden=(16,)), (8, 8, 1), 10), (8, 8, 1))
    (3, 10)
    """
    x = jax.ShapeDtypeStruct((_CHECK_BATCH, *map(int, input_shape)), dtype)
    out = jax.eval_shape(lambda p, e, b: structure.apply(p, e, b, train=False)[0], structure.params,
                         structure.extra, x)
    return tuple(int(d) for d in getattr(out, "shape", ()))


def check_model_outputs(structure: ModelStructure, input_shape: Sequence[int], num_outputs: int, *,
                        classification: bool | None = None, sequence: int | None = None,
                        name: str = "the model") -> tuple[int, ...]:
    r"""Check, before any training, that the model maps a batch of ``B`` examples to ``B`` rows of
    ``num_outputs`` values; returns one example's output shape. :class:`ConfigError` (one line, naming the
    model, the shapes and the number expected) when:

    * the model raises on a batch of ``input_shape`` examples (in evaluation mode);
    * its output is not an array with a batch axis: a scalar per batch, a tuple, or a first axis that is
      not the batch (an output averaged over the batch);
    * one example's output does not hold ``num_outputs`` values: a class count other than the data's
      (``num_outputs = C``, the labels ``0 .. C-1``), or a target of another size;
    * ``classification=True`` and the output is not ``(B, C)`` (the scores of each class on one axis).

    ``classification=None`` checks the size only: ``(B, C)``, ``(B, T)``, and ``(B,)`` for one target pass.
    ``sequence=T`` (token windows): the output must be ``(B, T, V)``, the scores of the ``V = num_outputs``
    tokens at every position.

    >>> s = model_structure(ModelConfig(hidden=(16,)), (8, 8, 1), 10)
    >>> check_model_outputs(s, (8, 8, 1), 10, classification=True)
    (10,)
    >>> check_model_outputs(s, (8, 8, 1), 11)
    Traceback (most recent call last):
    ...
    lrjax.engine._config.ConfigError: the model outputs 10 values per example (shape (B, 10)), but the data has 11 outputs per example (classes 0 .. 10, or a target of that size); make the model's output width 11 (the factory gets num_outputs=11 when it takes it)
    """
    shape_in = tuple(int(d) for d in input_shape)
    try:
        out = output_shape(structure, shape_in, jnp.float32 if sequence is None else jnp.int32)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the user's model raised, in one line naming it
        raise ConfigError(f"{name} failed on a batch of {_CHECK_BATCH} examples of shape {shape_in}: "
                          f"{type(e).__name__}: {_first_line(e)}") from e
    n = int(num_outputs)
    if len(out) == 0 or out[0] != _CHECK_BATCH:
        raise ConfigError(f"{name} returned an output of shape {out} for a batch of {_CHECK_BATCH} examples; it "
                          f"must keep the batch axis first: (B, {n}) (one row of {n} outputs per example)")
    per = out[1:]
    if sequence is not None:
        if per != (int(sequence), n):
            raise ConfigError(f"{name} returned an output of shape (B, {', '.join(map(str, per))}) for windows of "
                              f"{sequence} tokens; a sequence model needs (B, {sequence}, {n}): the scores of the "
                              f"{n} tokens of the vocabulary at every position")
        return per
    if math.prod(per) != n:
        shown = "(B, " + ", ".join(map(str, per)) + ")" if per else "(B,)"
        raise ConfigError(f"{name} outputs {math.prod(per)} values per example (shape {shown}), but the data has "
                          f"{n} outputs per example (classes 0 .. {n - 1}, or a target of that size); make the "
                          f"model's output width {n} (the factory gets num_outputs={n} when it takes it)")
    if classification and per != (n,):
        raise ConfigError(f"{name} returned scores of shape (B, {', '.join(map(str, per))}); classification needs "
                          f"(B, {n}): one score per class on the last axis")
    return per


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:397] + "..."


@dataclasses.dataclass(frozen=True)
class _Builder:
    """A hashable ``rngs -> module`` (so structures are cached per model, data shape and output count)."""

    factory: Any                      # a ModelConfig (built-in) or a callable
    args: tuple[tuple[str, Any], ...]
    input_shape: tuple[int, ...]
    num_outputs: int

    @property
    def builtin(self) -> bool:
        return isinstance(self.factory, ModelConfig)

    def __call__(self, rngs: nnx.Rngs) -> nnx.Module:
        if self.builtin:
            return make_model(self.factory, self.input_shape, self.num_outputs, rngs)
        return call_factory(self.factory, rngs, self.input_shape, self.num_outputs, dict(self.args))


def _hashable(args: dict[str, Any]) -> tuple:
    def fix(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(fix(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, fix(x)) for k, x in v.items()))
        return v

    return tuple(sorted((k, fix(v)) for k, v in args.items()))


def model_structure(model: ModelConfig | Callable, input_shape: Sequence[int], num_outputs: int,
                    args: dict[str, Any] | None = None) -> ModelStructure:
    """The :class:`ModelStructure` of a model config (built-in kind or ``factory``) or of a factory
    callable, for examples of ``input_shape`` and ``num_outputs`` outputs; traced once per combination.

    >>> s = model_structure(ModelConfig(hidden=(16,)), (8, 8, 1), 10)
    >>> params, extra, rng = s.init(jax.random.key_data(jax.random.key(0)))
    >>> s.apply(params, extra, jnp.zeros((2, 8, 8, 1)))[0].shape
    (2, 10)
    """
    shape = tuple(int(d) for d in input_shape)
    if isinstance(model, ModelConfig):
        if model.factory is not None:
            factory, args = load_reference(model.factory), dict(model.args)
        else:
            factory, args = dataclasses.replace(model, factory=None, args={}), {}
    elif callable(model):
        factory = model
    else:
        raise TypeError(f"model must be a ModelConfig or a factory (rngs, **kw) -> nnx.Module, got {model!r}")
    build = _Builder(factory, _hashable(args or {}), shape, int(num_outputs))
    try:
        hash(build)
        trace = _structure
    except TypeError:  # unhashable args: trace this one apart
        trace = _structure.__wrapped__
    try:
        return trace(build)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        if build.builtin:
            raise ConfigError(str(e)) from None
        raise _factory_failed(factory, shape, num_outputs, e) from e
    except Exception as e:  # noqa: BLE001 - any error of the user's factory is a bad config, in one line
        if build.builtin:
            raise  # a bug in lrjax's own models: the traceback matters
        raise _factory_failed(factory, shape, num_outputs, e) from e


def _factory_failed(factory: Any, shape: tuple[int, ...], num_outputs: int, e: BaseException) -> ConfigError:
    return ConfigError(f"model {getattr(factory, '__name__', factory)!r} failed on inputs of shape {shape} "
                       f"with {num_outputs} outputs: {type(e).__name__}: {_first_line(e)}")
