"""Evaluate 10**6 steps of every schedule family: lrjax vs the equivalent optax schedule.

Each family is one vectorised jitted call over ``jnp.arange(10**6)``, timed two ways for lrjax:

* ``closure``: the schedule is a constant of the jitted function, as when it is handed to
  ``optax.adamw(learning_rate=sched)``. This is like for like with optax's closures (XLA folds
  the hyperparameters into the program either way). The target ratio applies here.
* ``arg``: the schedule is an ARGUMENT (runtime array leaves: how it lives in an optimizer
  state, and why new values never recompile). XLA cannot fold a runtime base or exponent, so
  e.g. ``gamma ** k`` stays a full ``pow`` per step.

Every function is warmed up (compiled) first, then all of them are timed in interleaved
rounds; the table reports medians. Families without an optax counterpart are timed alone.
The last line is the worst closure ratio.

    python benchmarks/schedule_eval.py [--steps 1000000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax as L


def cases():
    """name -> (lrjax schedule, optax schedule or None)."""
    W, D = 10_000, 990_000
    cos = L.CosineDecay(1e-3, D, floor=1e-5)
    ocos = optax.cosine_decay_schedule(1e-3, D, alpha=1e-5 / 1e-3)
    return {
        "constant": (L.Constant(1e-3), optax.constant_schedule(1e-3)),
        "linear": (L.Linear(0.0, 1e-3, 500_000), optax.linear_schedule(0.0, 1e-3, 500_000)),
        "step_decay": (L.StepDecay(1e-3, 100_000, 0.5),
                       optax.exponential_decay(1e-3, 100_000, 0.5, staircase=True)),
        "multi_step": (L.MultiStep(1e-3, [300_000, 600_000, 900_000], 0.1),
                       optax.piecewise_constant_schedule(1e-3, {300_000: 0.1, 600_000: 0.1, 900_000: 0.1})),
        "exponential": (L.Exponential(1e-3, 0.5, 100_000), optax.exponential_decay(1e-3, 100_000, 0.5)),
        "exponential (staircase)": (L.Exponential(1e-3, 0.5, 100_000, staircase=True),
                                    optax.exponential_decay(1e-3, 100_000, 0.5, staircase=True)),
        "inverse_time": (L.InverseTime(1e-3, 1e-4), None),
        "polynomial": (L.Polynomial(1e-3, 1e-5, 800_000, 2.0), optax.polynomial_schedule(1e-3, 1e-5, 2.0, 800_000)),
        "cosine_decay": (cos, ocos),
        "tanh_decay": (L.TanhDecay(1e-3, D, 1e-5), None),
        "cosine_restarts": (
            L.CosineRestarts(1e-3, 100_000, 1.0),
            optax.sgdr_schedule([dict(init_value=1e-3, peak_value=1e-3, warmup_steps=0, decay_steps=100_000)] * 10),
        ),
        "cyclic": (L.Cyclic(1e-4, 1e-3, 50_000, mode="triangular2"), None),
        "one_cycle (cos)": (L.OneCycle(1e-3, 10**6), optax.cosine_onecycle_schedule(10**6, 1e-3)),
        "one_cycle (linear)": (L.OneCycle(1e-3, 10**6, anneal_strategy="linear", three_phase=True),
                               optax.linear_onecycle_schedule(10**6, 1e-3)),
        "momentum_of": (L.OneCycle(1e-3, 10**6).momentum, None),
        "inverse_sqrt": (L.InverseSqrt(1e-3, W), None),
        "warmup_stable_decay": (
            L.WarmupStableDecay(1e-3, W, 790_000, 200_000),
            optax.join_schedules([optax.linear_schedule(0.0, 1e-3, W), optax.constant_schedule(1e-3),
                                  optax.linear_schedule(1e-3, 0.0, 200_000)], [W, W + 790_000]),
        ),
        "warmup + cosine": (L.Warmup(L.CosineDecay(1e-3, D, floor=1e-5), W),
                            optax.warmup_cosine_decay_schedule(0.0, 1e-3, W, W + D, 1e-5)),
        "sequence": (
            L.Sequence([L.Linear(0.0, 1e-3, W), L.Constant(1e-3), cos], [W, 2 * W]),
            optax.join_schedules([optax.linear_schedule(0.0, 1e-3, W), optax.constant_schedule(1e-3), ocos],
                                 [W, 2 * W]),
        ),
        "product": (L.Product([cos, L.StepDecay(1.0, 100_000, 0.5)]),
                    lambda t, a=ocos, b=optax.exponential_decay(1.0, 100_000, 0.5, staircase=True): a(t) * b(t)),
        "scale": (L.Scale(cos, 2.0), lambda t: 2.0 * ocos(t)),
        "clamp": (L.Clamp(cos, 1e-4, 5e-4), lambda t: jnp.clip(ocos(t), 1e-4, 5e-4)),
        "piecewise_constant": (L.PiecewiseConstant([300_000, 600_000], [1e-3, 1e-4, 1e-5]),
                               optax.piecewise_constant_schedule(1e-3, {300_000: 0.1, 600_000: 0.1})),
        "shift": (L.Shift(cos, 1000), lambda t: ocos(t + 1000)),
    }


def _closed_over(s):
    """A jitted ``t -> s(t)`` with ``s`` a constant (not a default argument: jit would re-bind it per call)."""
    return jax.jit(lambda t: s(t))


def _time(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10**6)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    steps = jnp.arange(args.steps, dtype=jnp.int32)
    run_lrjax = jax.jit(lambda s, t: s(t))  # the schedule is an argument: one program per structure
    table = cases()
    fns = {}
    for name, (ours, theirs) in table.items():
        fa = (lambda s=ours: run_lrjax(s, steps))
        fo = (lambda f=_closed_over(ours): f(steps))
        fa()
        ft = None
        a = np.asarray(fo())  # compile and warm
        diff = None
        if theirs is not None:
            try:  # most optax schedules take a vector of counts; piecewise_interpolate needs a vmap
                jax.eval_shape(theirs, steps)
                ft = lambda f=jax.jit(theirs): f(steps)  # noqa: E731
            except TypeError:
                ft = lambda f=jax.jit(jax.vmap(theirs)): f(steps)  # noqa: E731
            b = np.asarray(ft())
            if b.shape != a.shape:  # e.g. optax.constant_schedule returns one scalar: broadcast it
                ft = lambda f=jax.jit(lambda t: jnp.broadcast_to(theirs(t), t.shape)): f(steps)  # noqa: E731
                b = np.asarray(ft())
            diff = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
        fns[name] = (fo, fa, ft, diff)

    times = {name: ([], [], []) for name in fns}
    for _ in range(args.repeats):  # interleaved: slow drifts of a shared machine hit both sides
        _time(next(iter(fns.values()))[0])  # untimed: the first call of a round pays for the round switch
        for name, (fo, fa, ft, _) in fns.items():
            times[name][0].append(_time(fo))
            times[name][2].append(_time(fa))
            if ft is not None:
                times[name][1].append(_time(ft))

    print(f"# {args.steps:,} steps per call, median of {args.repeats} interleaved repeats; "
          f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].device_kind}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'family':<26} {'closure ms':>10} {'arg ms':>8} {'optax ms':>9} {'ratio':>6} {'arg ratio':>9}  max rel diff")
    worst, worst_arg = (0.0, ""), (0.0, "")
    for name, (_fo, _fa, ft, diff) in fns.items():
        ours = statistics.median(times[name][0]) * 1e3
        arg = statistics.median(times[name][2]) * 1e3
        if ft is None:
            print(f"{name:<26} {ours:10.3f} {arg:8.3f} {'-':>9} {'-':>6} {'-':>9}  (no optax equivalent)")
            continue
        theirs = statistics.median(times[name][1]) * 1e3
        ratio, aratio = ours / theirs, arg / theirs
        worst, worst_arg = max(worst, (ratio, name)), max(worst_arg, (aratio, name))
        print(f"{name:<26} {ours:10.3f} {arg:8.3f} {theirs:9.3f} {ratio:6.2f} {aratio:9.2f}  {diff:.1e}")
    print(f"worst ratio with the schedule as an argument: {worst_arg[0]:.2f} ({worst_arg[1]})")
    print(f"worst ratio lrjax/optax: {worst[0]:.2f} ({worst[1]})")


if __name__ == "__main__":
    main()
