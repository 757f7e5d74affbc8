"""Generate the golden learning-rate vectors that tests/compat compares lrjax against.

Runs OUTSIDE the project environment, in a virtualenv holding the real libraries:

    python3 -m venv /work/golden_env
    /work/golden_env/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers timm keras jax
    KERAS_BACKEND=jax /work/golden_env/bin/python tests/golden/generate.py

(versions used for the committed files: recorded in each JSON's "versions" entry). optax is a
dependency of lrjax: its vectors come from the project's own environment,

    python tests/golden/generate.py optax       # writes tests/golden/optax.json

It writes tests/golden/{torch,transformers,keras,timm}.json. Each holds "cases": for each
configuration its constructor arguments and the learning rate (and, for CyclicLR/OneCycleLR,
the momentum) at every step t = 0, 1, ..., n-1 — PyTorch/HF: ``get_last_lr()`` after t calls
of ``scheduler.step()``; Keras: ``schedule(t)``; timm: the lr after ``step_update(t)`` — and
"errors": configurations the library refuses, with the exception it raised and when.
The test suite reads these files; it never imports the libraries.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = Path(__file__).resolve().parent


def _clean(x):
    """JSON-friendly copy (tuples -> lists)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _write(name: str, versions: dict, cases: list, errors: list) -> None:
    path = HERE / f"{name}.json"
    data = {"library": name, "versions": versions, "cases": cases, "errors": errors}
    text = json.dumps(data, separators=(",", ":"))
    path.write_text(text + "\n")
    print(f"{path.name}: {len(cases)} cases, {len(errors)} error cases, {len(text) / 1e3:.0f} kB")


def _error_record(kind: str, cfg: dict, exc: BaseException, when: str) -> dict:
    return {**cfg, "kind": kind, "error": type(exc).__name__, "message": str(exc)[:200], "when": when}


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------

def _lambda(src):
    """An ``lr_lambda`` from its source text: the JSON keeps the text, the test suite evaluates the same."""
    import math

    return eval(src, {"math": math})  # noqa: S307 - our own generator's text


def torch_cases():
    import torch
    from torch.optim import lr_scheduler as S
    from torch.optim import swa_utils

    def optimizer(lr, kind="sgd"):
        p = torch.nn.Parameter(torch.zeros(1))
        if kind == "adam":
            return torch.optim.Adam([p], lr=lr)
        return torch.optim.SGD([p], lr=lr, momentum=0.9)

    def build(opt, spec):
        cls = getattr(S, spec["class"], None) or getattr(swa_utils, spec["class"])
        kw = dict(spec.get("kwargs", {}))
        if "lr_lambda" in kw:  # source text (a list of texts: one per group)
            f = kw["lr_lambda"]
            kw["lr_lambda"] = [_lambda(x) for x in f] if isinstance(f, list) else _lambda(f)
        if "schedulers" in kw:
            kw["schedulers"] = [build(opt, s) for s in kw["schedulers"]]
        if spec["class"] == "ChainedScheduler":  # ChainedScheduler(schedulers, optimizer=None)
            return cls(kw["schedulers"], optimizer=opt)
        return cls(opt, **kw)

    cases, errors = [], []

    def run(name, cls, lr, steps, opt_kind="sgd", metrics=None, lrjax_kwargs=None, **kwargs):
        cfg = {"name": name, "class": cls, "lr": lr, "kwargs": kwargs, "optimizer": opt_kind}
        if lrjax_kwargs:  # lrjax-only arguments (total_steps of a tabulated lr_lambda)
            cfg["lrjax_kwargs"] = lrjax_kwargs
        opt = optimizer(lr, opt_kind)
        try:
            sched = build(opt, {"class": cls, "kwargs": kwargs})
        except Exception as e:  # noqa: BLE001 - recorded
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        lrs, moms = [], []
        track_mom = cls in ("CyclicLR", "OneCycleLR") and kwargs.get("cycle_momentum", True)
        stopped = None
        n = len(metrics) if metrics is not None else steps
        for t in range(n):
            lrs.append(float(sched.get_last_lr()[0]))
            if track_mom:
                g = opt.param_groups[0]
                moms.append(float(g["betas"][0] if opt_kind == "adam" else g["momentum"]))
            opt.step()
            try:
                if metrics is not None:
                    sched.step(metrics[t])
                    lrs[-1] = float(sched.get_last_lr()[0])  # value after seeing metric t
                else:
                    sched.step()
            except Exception as e:  # noqa: BLE001 - OneCycleLR refuses to step past total_steps
                stopped = {"error": type(e).__name__, "at_step": t + 1, "message": str(e)[:200]}
                break
        rec = {**cfg, "lr_values": lrs}
        if metrics is not None:
            rec["metrics"] = list(metrics)
        if track_mom:
            rec["momentum"] = moms
        if stopped:
            rec["stops"] = stopped
        cases.append(rec)

    def sub(cls, **kw):
        return {"class": cls, "kwargs": kw}

    def run_swa(name, lr, steps, after, start, **swa_kw):
        """PyTorch's SWA recipe (its tests' _test_swalr): `after` and SWALR built first, then per epoch
        `after.step()` before `start`, `swa.step()` from `start` on."""
        opt = optimizer(lr)
        sched = build(opt, after) if after is not None else None
        swa = swa_utils.SWALR(opt, **swa_kw)
        lrs = []
        for epoch in range(steps):
            lrs.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            if epoch >= start:
                swa.step()
            elif sched is not None:
                sched.step()
        kw = {**swa_kw, "start": start, **({"after": after} if after is not None else {})}
        cases.append({"name": name, "class": "SWALR", "lr": lr, "kwargs": kw, "optimizer": "sgd", "lr_values": lrs})

    # StepLR
    run("step_defaults", "StepLR", 0.1, 30, step_size=5)
    run("step_half", "StepLR", 1.0, 30, step_size=3, gamma=0.5)
    run("step_every", "StepLR", 0.5, 40, step_size=1, gamma=0.9)
    run("step_long", "StepLR", 0.01, 90, step_size=30, gamma=0.2)
    # MultiStepLR
    run("multistep", "MultiStepLR", 0.1, 45, milestones=[5, 10])
    run("multistep_dup", "MultiStepLR", 1.0, 30, milestones=[3, 3, 8], gamma=0.5)
    run("multistep_unsorted", "MultiStepLR", 1.0, 36, milestones=[10, 2, 6], gamma=0.5)
    run("multistep_zero", "MultiStepLR", 0.3, 15, milestones=[0, 4], gamma=0.1)
    # ConstantLR
    run("constant_defaults", "ConstantLR", 0.1, 15)
    run("constant_half_10", "ConstantLR", 1.0, 30, factor=0.5, total_iters=10)
    run("constant_factor_one", "ConstantLR", 0.2, 15, factor=1.0, total_iters=4)
    run("constant_zero_iters", "ConstantLR", 0.1, 10, factor=0.25, total_iters=0)
    # LinearLR
    run("linear_defaults", "LinearLR", 0.1, 15)
    run("linear_decay", "LinearLR", 1.0, 30, start_factor=1.0, end_factor=0.1, total_iters=10)
    run("linear_to_zero", "LinearLR", 0.5, 24, start_factor=0.25, end_factor=0.0, total_iters=8)
    run("linear_zero_iters", "LinearLR", 0.1, 10, start_factor=0.5, total_iters=0)
    run("linear_flat", "LinearLR", 0.1, 12, start_factor=1.0, end_factor=1.0, total_iters=4)
    # ExponentialLR
    run("exp_09", "ExponentialLR", 0.1, 50, gamma=0.9)
    run("exp_05", "ExponentialLR", 1.0, 40, gamma=0.5)
    run("exp_grow", "ExponentialLR", 0.01, 30, gamma=1.05)
    # PolynomialLR
    run("poly_defaults", "PolynomialLR", 0.1, 15)
    run("poly_sq", "PolynomialLR", 1.0, 30, total_iters=10, power=2.0)
    run("poly_sqrt", "PolynomialLR", 0.5, 36, total_iters=12, power=0.5)
    run("poly_zero_iters", "PolynomialLR", 0.1, 10, total_iters=0)
    # CosineAnnealingLR (periodic past T_max: the golden values decide)
    run("cos_10", "CosineAnnealingLR", 0.1, 45, T_max=10)
    run("cos_eta", "CosineAnnealingLR", 1.0, 60, T_max=20, eta_min=0.01)
    run("cos_tmax1", "CosineAnnealingLR", 0.1, 8, T_max=1)
    run("cos_7", "CosineAnnealingLR", 0.3, 50, T_max=7, eta_min=0.05)
    # CosineAnnealingWarmRestarts
    run("sgdr_5", "CosineAnnealingWarmRestarts", 0.1, 30, T_0=5)
    run("sgdr_5x2", "CosineAnnealingWarmRestarts", 0.1, 105, T_0=5, T_mult=2)
    run("sgdr_3x3_eta", "CosineAnnealingWarmRestarts", 1.0, 120, T_0=3, T_mult=3, eta_min=0.01)
    run("sgdr_1", "CosineAnnealingWarmRestarts", 0.1, 6, T_0=1)
    run("sgdr_10x2", "CosineAnnealingWarmRestarts", 0.05, 210, T_0=10, T_mult=2, eta_min=0.001)
    # CyclicLR
    run("clr_tri", "CyclicLR", 0.1, 60, base_lr=0.01, max_lr=0.1, step_size_up=5)
    run("clr_tri2", "CyclicLR", 0.1, 60, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2")
    run("clr_exp", "CyclicLR", 0.1, 90, base_lr=0.001, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=0.97)
    run("clr_asym", "CyclicLR", 0.1, 60, base_lr=0.01, max_lr=0.2, step_size_up=4, step_size_down=6)
    run("clr_short_down", "CyclicLR", 0.1, 45, base_lr=0.05, max_lr=0.5, step_size_up=8, step_size_down=2,
        base_momentum=0.7, max_momentum=0.95)
    run("clr_no_mom", "CyclicLR", 0.1, 30, base_lr=0.01, max_lr=0.1, step_size_up=5, cycle_momentum=False)
    run("clr_adam", "CyclicLR", 0.1, 40, "adam", base_lr=0.001, max_lr=0.01, step_size_up=6, mode="triangular2",
        base_momentum=0.85, max_momentum=0.95)
    run("clr_defaults", "CyclicLR", 0.1, 12000, base_lr=0.001, max_lr=0.006)
    # OneCycleLR (stepping past total_steps raises: at most total_steps + 1 values)
    run("onecycle_100", "OneCycleLR", 0.1, 500, max_lr=0.1, total_steps=100)
    run("onecycle_20", "OneCycleLR", 0.1, 500, max_lr=1.0, total_steps=20)
    run("onecycle_3phase", "OneCycleLR", 0.1, 500, max_lr=0.5, total_steps=50, three_phase=True)
    run("onecycle_linear", "OneCycleLR", 0.1, 500, max_lr=0.5, total_steps=40, anneal_strategy="linear")
    run("onecycle_3phase_linear", "OneCycleLR", 0.1, 500, max_lr=0.5, total_steps=30, three_phase=True,
        anneal_strategy="linear", pct_start=0.4)
    run("onecycle_frac_pct", "OneCycleLR", 0.1, 500, max_lr=0.2, total_steps=10, pct_start=0.25)
    run("onecycle_frac_pct_3phase", "OneCycleLR", 0.1, 500, max_lr=0.2, total_steps=25, pct_start=0.33,
        three_phase=True)
    run("onecycle_pct0", "OneCycleLR", 0.1, 500, max_lr=0.3, total_steps=15, pct_start=0.0)
    run("onecycle_epochs", "OneCycleLR", 0.1, 500, max_lr=0.3, epochs=4, steps_per_epoch=7, div_factor=10.0,
        final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9)
    run("onecycle_adam", "OneCycleLR", 0.1, 500, "adam", max_lr=0.01, total_steps=30, pct_start=0.5)
    run("onecycle_no_mom", "OneCycleLR", 0.1, 500, max_lr=0.01, total_steps=12, cycle_momentum=False)
    # SequentialLR (each later scheduler restarts its own count at its milestone)
    run("seq_linear_exp", "SequentialLR", 0.1, 45,
        schedulers=[sub("LinearLR", start_factor=0.1, total_iters=5), sub("ExponentialLR", gamma=0.9)],
        milestones=[5])
    run("seq_const_cos", "SequentialLR", 1.0, 40,
        schedulers=[sub("ConstantLR", factor=0.5, total_iters=3), sub("CosineAnnealingLR", T_max=10)],
        milestones=[3])
    run("seq_three", "SequentialLR", 0.1, 60,
        schedulers=[sub("LinearLR", start_factor=0.2, total_iters=4), sub("StepLR", step_size=3, gamma=0.5),
                    sub("ExponentialLR", gamma=0.95)],
        milestones=[4, 10])
    run("seq_linear_sgdr", "SequentialLR", 0.1, 40,
        schedulers=[sub("LinearLR", start_factor=0.1, total_iters=5), sub("CosineAnnealingWarmRestarts", T_0=5)],
        milestones=[5])
    run("seq_linear_poly", "SequentialLR", 0.2, 45,
        schedulers=[sub("LinearLR", start_factor=0.5, total_iters=5), sub("PolynomialLR", total_iters=10, power=2.0)],
        milestones=[5])
    run("seq_linear_multistep", "SequentialLR", 0.1, 48,
        schedulers=[sub("LinearLR", start_factor=0.1, total_iters=4),
                    sub("MultiStepLR", milestones=[5, 10], gamma=0.5)],
        milestones=[6])
    # ChainedScheduler (multiplicative schedulers: the factors multiply)
    run("chain_const_exp", "ChainedScheduler", 0.1, 30,
        schedulers=[sub("ConstantLR", factor=0.5, total_iters=4), sub("ExponentialLR", gamma=0.9)])
    run("chain_linear_step", "ChainedScheduler", 1.0, 30,
        schedulers=[sub("LinearLR", start_factor=0.2, total_iters=5), sub("StepLR", step_size=3, gamma=0.5)])
    run("chain_three", "ChainedScheduler", 0.1, 36,
        schedulers=[sub("MultiStepLR", milestones=[4, 8]), sub("ExponentialLR", gamma=0.95),
                    sub("ConstantLR", factor=0.1, total_iters=2)])
    run("chain_linear_cos_to_tmax", "ChainedScheduler", 0.1, 21,
        schedulers=[sub("LinearLR", start_factor=0.1, total_iters=5), sub("CosineAnnealingLR", T_max=20)])
    # ReduceLROnPlateau: lr after each metric
    down_then_flat = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7,
                      0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    run("plateau_defaults", "ReduceLROnPlateau", 0.1, 0, metrics=down_then_flat)
    run("plateau_patience2", "ReduceLROnPlateau", 0.1, 0, metrics=down_then_flat, patience=2, factor=0.5)
    run("plateau_cooldown", "ReduceLROnPlateau", 0.1, 0, metrics=down_then_flat, patience=1, cooldown=3,
        factor=0.5)
    run("plateau_min_lr", "ReduceLROnPlateau", 0.1, 0, metrics=down_then_flat, patience=0, factor=0.1,
        min_lr=1e-4)
    run("plateau_abs", "ReduceLROnPlateau", 0.1, 0, metrics=[1.0, 0.99995, 0.9999, 0.5, 0.49999, 0.49998,
                                                             0.49997, 0.49996, 0.4, 0.4, 0.4, 0.4],
        threshold_mode="abs", threshold=0.01, patience=2, factor=0.5)
    run("plateau_max", "ReduceLROnPlateau", 0.1, 0, metrics=[0.1, 0.2, 0.3, 0.3, 0.29, 0.31, 0.3, 0.3, 0.3, 0.5,
                                                             0.5, 0.5, 0.5],
        mode="max", patience=2, factor=0.5)
    run("plateau_negative_rel", "ReduceLROnPlateau", 0.1, 0,
        metrics=[-1.0, -0.99, -0.98, -0.97, -0.96, -0.95, -0.94, -0.93, -0.92, -0.91, -0.9, -0.9],
        patience=2, factor=0.5, threshold=0.1)
    run("plateau_eps", "ReduceLROnPlateau", 1e-3, 0, metrics=[1.0] * 12, patience=1, factor=0.5, eps=2e-4)

    # LambdaLR: lr * lr_lambda(t). Lambdas JAX traces become lrjax.Lambda; Python branches/math are
    # tabulated by lrjax for t = 0..total_steps (held after: compared up to there unless the lambda holds too)
    run("lambda_exp", "LambdaLR", 0.1, 60, lr_lambda="lambda epoch: 0.95 ** epoch")
    run("lambda_inverse", "LambdaLR", 0.5, 60, lr_lambda="lambda epoch: 1.0 / (1.0 + 0.1 * epoch)")
    run("lambda_stair", "LambdaLR", 0.1, 45, lr_lambda="lambda epoch: 0.1 ** (epoch // 10)")
    run("lambda_from_zero", "LambdaLR", 0.2, 30, lr_lambda="lambda epoch: epoch / 10")
    run("lambda_const", "LambdaLR", 0.1, 10, lr_lambda="lambda epoch: 0.5")
    run("lambda_list_of_one", "LambdaLR", 0.1, 30, lr_lambda=["lambda epoch: 0.9 ** epoch"])
    run("lambda_min_warmup", "LambdaLR", 0.1, 90, lr_lambda="lambda epoch: min(1.0, (epoch + 1) / 5)",
        lrjax_kwargs={"total_steps": 30})
    run("lambda_warmup_cosine", "LambdaLR", 0.1, 51,
        lr_lambda="lambda e: (e + 1) / 5 if e < 5 else 0.5 * (1 + math.cos(math.pi * (e - 5) / 45))",
        lrjax_kwargs={"total_steps": 50})
    run("lambda_math_exp", "LambdaLR", 1.0, 41, lr_lambda="lambda epoch: math.exp(-0.05 * epoch)",
        lrjax_kwargs={"total_steps": 40})
    # MultiplicativeLR: lr * prod_{i=1..t} lr_lambda(i); a constant factor is lrjax.Exponential
    run("mult_09", "MultiplicativeLR", 0.1, 60, lr_lambda="lambda epoch: 0.9")
    run("mult_grow", "MultiplicativeLR", 0.01, 40, lr_lambda="lambda epoch: 1.05")
    run("mult_one", "MultiplicativeLR", 0.1, 30, lr_lambda="lambda epoch: 1.0")
    run("mult_branch", "MultiplicativeLR", 0.1, 41, lr_lambda="lambda epoch: 0.5 if epoch % 10 == 0 else 1.0",
        lrjax_kwargs={"total_steps": 40})
    run("mult_varying", "MultiplicativeLR", 1.0, 31, lr_lambda="lambda epoch: 0.99 ** epoch",
        lrjax_kwargs={"total_steps": 30})
    run("mult_zero", "MultiplicativeLR", 0.1, 20, lr_lambda="lambda epoch: 0.0", lrjax_kwargs={"total_steps": 10})
    # SWALR (torch.optim.swa_utils) alone: from the optimizer's rate to swa_lr over anneal_epochs steps
    run("swa_defaults", "SWALR", 0.1, 30, swa_lr=0.05)
    run("swa_cos", "SWALR", 0.1, 36, swa_lr=0.01, anneal_epochs=12)
    run("swa_linear", "SWALR", 0.1, 15, swa_lr=0.01, anneal_epochs=5, anneal_strategy="linear")
    run("swa_up", "SWALR", 0.01, 24, swa_lr=0.05, anneal_epochs=8)
    run("swa_one", "SWALR", 0.1, 6, swa_lr=0.02, anneal_epochs=1)
    run("swa_zero", "SWALR", 0.1, 6, swa_lr=0.02, anneal_epochs=0)
    run("swa_list_of_one", "SWALR", 0.1, 15, swa_lr=[0.02], anneal_epochs=5, anneal_strategy="linear")
    # ... after another scheduler (PyTorch's test_swalr_* recipes and a few more)
    run_swa("swa_no_anneal", 0.05, 18, None, 5, swa_lr=0.01, anneal_epochs=1)
    run_swa("swa_cos_after_mult", 0.05, 30, sub("MultiplicativeLR", lr_lambda="lambda epoch: 0.9"), 5, swa_lr=0.01,
            anneal_epochs=5)
    run_swa("swa_linear_after_mult", 0.5, 27, sub("MultiplicativeLR", lr_lambda="lambda epoch: 0.9"), 5,
            swa_lr=0.02, anneal_epochs=4, anneal_strategy="linear")
    run_swa("swa_after_lambda", 0.1, 45, sub("LambdaLR", lr_lambda="lambda epoch: 0.95 ** epoch"), 10, swa_lr=0.01,
            anneal_epochs=5)
    run_swa("swa_up_after_step", 0.1, 30, sub("StepLR", step_size=3, gamma=0.5), 7, swa_lr=0.05, anneal_epochs=3,
            anneal_strategy="linear")
    run_swa("swa_after_cos", 0.1, 48, sub("CosineAnnealingLR", T_max=20), 12, swa_lr=0.02, anneal_epochs=4)
    run_swa("swa_after_mult_table", 0.1, 27,
            {**sub("MultiplicativeLR", lr_lambda="lambda epoch: 0.5 if epoch % 3 == 0 else 1.0"),
             "lrjax_kwargs": {"total_steps": 6}}, 6, swa_lr=0.01, anneal_epochs=3)

    # Errors (constructor refusals and ZeroDivisionError where a phase has zero length)
    run("err_lambda_two", "LambdaLR", 0.1, 5, lr_lambda=["lambda e: 1.0", "lambda e: 0.5"])
    run("err_mult_two", "MultiplicativeLR", 0.1, 5, lr_lambda=["lambda e: 1.0", "lambda e: 0.5"])
    run("err_swa_strategy", "SWALR", 0.1, 5, swa_lr=1.0, anneal_strategy="exponential")
    run("err_swa_anneal_neg", "SWALR", 0.1, 5, swa_lr=1.0, anneal_epochs=-1)
    run("err_swa_anneal_float", "SWALR", 0.1, 5, swa_lr=1.0, anneal_epochs=1.7)
    run("err_swa_lr_list", "SWALR", 0.1, 5, swa_lr=[1.0, 0.1, 0.01])
    run("err_constant_factor", "ConstantLR", 0.1, 5, factor=1.5)
    run("err_constant_neg", "ConstantLR", 0.1, 5, factor=-0.1)
    run("err_linear_start0", "LinearLR", 0.1, 5, start_factor=0.0)
    run("err_linear_start_big", "LinearLR", 0.1, 5, start_factor=1.5)
    run("err_linear_end", "LinearLR", 0.1, 5, end_factor=1.5)
    run("err_clr_mode", "CyclicLR", 0.1, 5, base_lr=0.01, max_lr=0.1, mode="foo")
    run("err_sgdr_t0", "CosineAnnealingWarmRestarts", 0.1, 5, T_0=0)
    run("err_sgdr_t0_float", "CosineAnnealingWarmRestarts", 0.1, 5, T_0=2.5)
    run("err_sgdr_tmult0", "CosineAnnealingWarmRestarts", 0.1, 5, T_0=5, T_mult=0)
    run("err_sgdr_tmult_float", "CosineAnnealingWarmRestarts", 0.1, 5, T_0=5, T_mult=1.5)
    run("err_onecycle_total0", "OneCycleLR", 0.1, 5, max_lr=0.1, total_steps=0)
    run("err_onecycle_no_total", "OneCycleLR", 0.1, 5, max_lr=0.1)
    run("err_onecycle_pct_big", "OneCycleLR", 0.1, 5, max_lr=0.1, total_steps=10, pct_start=1.5)
    run("err_onecycle_pct_int", "OneCycleLR", 0.1, 5, max_lr=0.1, total_steps=10, pct_start=0)
    run("err_onecycle_anneal", "OneCycleLR", 0.1, 5, max_lr=0.1, total_steps=10, anneal_strategy="foo")
    run("err_onecycle_zero_phase", "OneCycleLR", 0.1, 5, max_lr=0.1, total_steps=10, pct_start=0.1)
    run("err_onecycle_epochs0", "OneCycleLR", 0.1, 5, max_lr=0.1, epochs=0, steps_per_epoch=5)
    run("err_seq_milestones", "SequentialLR", 0.1, 5,
        schedulers=[sub("ExponentialLR", gamma=0.9), sub("ExponentialLR", gamma=0.5)], milestones=[2, 4])
    run("err_chain_empty", "ChainedScheduler", 0.1, 5, schedulers=[])
    run("err_plateau_factor", "ReduceLROnPlateau", 0.1, 0, metrics=[1.0], factor=1.0)
    run("err_plateau_mode", "ReduceLROnPlateau", 0.1, 0, metrics=[1.0], mode="foo")
    run("err_plateau_tmode", "ReduceLROnPlateau", 0.1, 0, metrics=[1.0], threshold_mode="foo")
    return {"torch": torch.__version__}, cases, errors


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers
# ---------------------------------------------------------------------------------------------

def transformers_cases():
    import torch
    import transformers
    from transformers import get_scheduler

    cases, errors = [], []

    def run(name, sched_name, lr, steps, W=None, T=None, metrics=None, **kw):
        cfg = {"name": name, "scheduler": sched_name, "learning_rate": lr, "num_warmup_steps": W,
               "num_training_steps": T, "scheduler_specific_kwargs": kw or None}
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.AdamW([p], lr=lr)
        try:
            sched = get_scheduler(sched_name, opt, num_warmup_steps=W, num_training_steps=T,
                                  scheduler_specific_kwargs=kw or None)
        except Exception as e:  # noqa: BLE001
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        lrs = []
        n = len(metrics) if metrics is not None else steps
        try:
            for t in range(n):
                lrs.append(float(sched.get_last_lr()[0]))
                opt.step()
                if metrics is not None:
                    sched.step(metrics[t])
                    lrs[-1] = float(sched.get_last_lr()[0])
                else:
                    sched.step()
        except Exception as e:  # noqa: BLE001
            errors.append(_error_record("step", cfg, e, f"step {len(lrs)}"))
            return
        rec = {**cfg, "lr_values": lrs}
        if metrics is not None:
            rec["metrics"] = list(metrics)
        cases.append(rec)

    run("linear", "linear", 1e-3, 300, W=10, T=100)
    run("linear_no_warmup", "linear", 5e-4, 150, W=0, T=50)
    run("linear_w_eq_t", "linear", 1e-3, 30, W=10, T=10)
    run("linear_w_gt_t", "linear", 1e-3, 60, W=20, T=10)
    run("linear_short", "linear", 0.1, 9, W=1, T=3)
    run("cosine", "cosine", 1e-3, 300, W=10, T=100)
    run("cosine_no_warmup", "cosine", 2e-4, 150, W=0, T=50)
    run("cosine_1cycle", "cosine", 1e-3, 240, W=5, T=80, num_cycles=1.0)
    run("cosine_2_5", "cosine", 1e-3, 300, W=10, T=100, num_cycles=2.5)
    run("cosine_w_gt_t", "cosine", 1e-3, 60, W=20, T=10)
    run("restarts", "cosine_with_restarts", 1e-3, 300, W=10, T=100)
    run("restarts_3", "cosine_with_restarts", 1e-3, 270, W=0, T=90, num_cycles=3)
    run("restarts_1_5", "cosine_with_restarts", 1e-3, 300, W=10, T=100, num_cycles=1.5)
    run("restarts_4_uneven", "cosine_with_restarts", 1e-3, 330, W=10, T=110, num_cycles=4)
    run("polynomial", "polynomial", 1e-3, 300, W=10, T=100)
    run("polynomial_sq", "polynomial", 1e-3, 300, W=10, T=100, power=2.0, lr_end=1e-5)
    run("polynomial_sqrt_no_warmup", "polynomial", 0.1, 150, W=0, T=50, power=0.5, lr_end=0.01)
    run("polynomial_w_gt_t", "polynomial", 1e-3, 45, W=15, T=10)
    run("constant", "constant", 1e-3, 20)
    run("constant_with_warmup", "constant_with_warmup", 1e-3, 60, W=20)
    run("constant_with_warmup_0", "constant_with_warmup", 1e-3, 10, W=0)
    run("inverse_sqrt", "inverse_sqrt", 1e-3, 300, W=100)
    run("inverse_sqrt_no_warmup", "inverse_sqrt", 1e-3, 300, W=0)
    run("inverse_sqrt_timescale", "inverse_sqrt", 1e-3, 300, W=10, timescale=50)
    run("cos_min_lr_rate", "cosine_with_min_lr", 1e-3, 300, W=10, T=100, min_lr_rate=0.1)
    run("cos_min_lr", "cosine_with_min_lr", 1e-3, 300, W=0, T=100, min_lr=1e-4)
    run("cos_min_lr_1cycle", "cosine_with_min_lr", 1e-3, 300, W=10, T=100, min_lr_rate=0.05, num_cycles=1.0)
    run("cos_warmup_min_lr", "cosine_warmup_with_min_lr", 1e-3, 300, W=10, T=100, min_lr_rate=0.1)
    run("cos_warmup_min_lr_rate", "cosine_warmup_with_min_lr", 1e-3, 300, W=10, T=100, min_lr=1e-4,
        warmup_lr_rate=0.05)
    run("cos_warmup_min_lr_w0", "cosine_warmup_with_min_lr", 1e-3, 150, W=0, T=50, min_lr_rate=0.1)
    run("cos_warmup_min_lr_w1", "cosine_warmup_with_min_lr", 1e-3, 150, W=1, T=50, min_lr_rate=0.1)
    run("cos_warmup_min_lr_w1_rate", "cosine_warmup_with_min_lr", 1e-3, 150, W=1, T=50, min_lr_rate=0.1,
        warmup_lr_rate=0.2)
    run("wsd", "warmup_stable_decay", 1e-3, 300, W=10, T=100, num_decay_steps=20)
    run("wsd_linear", "warmup_stable_decay", 1e-3, 300, W=10, T=100, num_decay_steps=30, decay_type="linear",
        min_lr_ratio=0.1)
    run("wsd_sqrt", "warmup_stable_decay", 1e-3, 300, W=20, T=100, num_decay_steps=20, warmup_type="1-sqrt",
        decay_type="1-sqrt")
    run("wsd_cos_warm", "warmup_stable_decay", 1e-3, 300, W=10, T=100, num_decay_steps=20, warmup_type="cosine",
        min_lr_ratio=0.2)
    run("wsd_stable_given", "warmup_stable_decay", 1e-3, 240, W=10, num_decay_steps=20, num_stable_steps=50)
    run("wsd_no_warmup", "warmup_stable_decay", 1e-3, 300, W=0, T=100, num_decay_steps=40, decay_type="linear")
    run("wsd_cycles", "warmup_stable_decay", 1e-3, 300, W=10, T=100, num_decay_steps=40, num_cycles=1.0,
        min_lr_ratio=0.1)
    run("plateau", "reduce_lr_on_plateau", 1e-3, 0, metrics=[1.0, 0.9] + [0.9] * 20, patience=3, factor=0.5)

    run("err_name", "foo", 1e-3, 5, W=1, T=5)
    run("err_linear_no_w", "linear", 1e-3, 5, T=5)
    run("err_cosine_no_t", "cosine", 1e-3, 5, W=1)
    run("err_poly_lr_end", "polynomial", 1e-3, 5, W=1, T=10, lr_end=1e-3)
    run("err_poly_w_eq_t", "polynomial", 1e-3, 20, W=10, T=10)
    run("err_min_lr_both", "cosine_with_min_lr", 1e-3, 5, W=1, T=10, min_lr=1e-5, min_lr_rate=0.1)
    run("err_min_lr_none", "cosine_with_min_lr", 1e-3, 5, W=1, T=10)
    run("err_warm_min_lr_none", "cosine_warmup_with_min_lr", 1e-3, 5, W=1, T=10)
    run("err_wsd_warmup_type", "warmup_stable_decay", 1e-3, 5, W=1, T=10, num_decay_steps=2, warmup_type="exp")
    run("err_wsd_decay_type", "warmup_stable_decay", 1e-3, 5, W=1, T=10, num_decay_steps=2, decay_type="exp")
    run("err_wsd_no_length", "warmup_stable_decay", 1e-3, 5, W=1, num_decay_steps=2)
    run("err_inverse_sqrt_no_w", "inverse_sqrt", 1e-3, 5)
    return {"transformers": transformers.__version__, "torch": torch.__version__}, cases, errors


# ---------------------------------------------------------------------------------------------
# Keras 3 (JAX backend)
# ---------------------------------------------------------------------------------------------

def keras_cases():
    import jax
    import keras
    from keras.optimizers import schedules as K

    cases, errors = [], []

    def run(name, cls, steps, **kw):
        cfg = {"name": name, "class": cls, "kwargs": kw}
        try:
            sched = getattr(K, cls)(**kw)
        except Exception as e:  # noqa: BLE001
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        f = jax.jit(lambda s: sched(s))
        lrs = [float(f(jax.numpy.asarray(t, dtype="int32"))) for t in range(steps)]
        cases.append({**cfg, "lr_values": lrs})

    run("exp", "ExponentialDecay", 300, initial_learning_rate=0.1, decay_steps=100, decay_rate=0.96)
    run("exp_stair", "ExponentialDecay", 90, initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5,
        staircase=True)
    run("exp_fast", "ExponentialDecay", 60, initial_learning_rate=1.0, decay_steps=1, decay_rate=0.9)
    run("exp_grow", "ExponentialDecay", 60, initial_learning_rate=0.01, decay_steps=20, decay_rate=1.5)
    run("invtime", "InverseTimeDecay", 90, initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)
    run("invtime_stair", "InverseTimeDecay", 90, initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5,
        staircase=True)
    run("invtime_1", "InverseTimeDecay", 60, initial_learning_rate=1.0, decay_steps=1, decay_rate=0.1)
    run("piecewise", "PiecewiseConstantDecay", 60, boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    run("piecewise_one", "PiecewiseConstantDecay", 15, boundaries=[5], values=[0.1, 0.01])
    run("piecewise_zero", "PiecewiseConstantDecay", 30, boundaries=[0, 4, 9], values=[0.3, 0.2, 0.1, 0.05])
    run("poly", "PolynomialDecay", 150, initial_learning_rate=0.1, decay_steps=50)
    run("poly_sq", "PolynomialDecay", 150, initial_learning_rate=0.1, decay_steps=50, end_learning_rate=0.001,
        power=2.0)
    run("poly_sqrt", "PolynomialDecay", 90, initial_learning_rate=1.0, decay_steps=30, end_learning_rate=0.0,
        power=0.5)
    run("poly_cycle", "PolynomialDecay", 120, initial_learning_rate=0.1, decay_steps=20, end_learning_rate=0.01,
        cycle=True)
    run("poly_cycle_sq", "PolynomialDecay", 90, initial_learning_rate=1.0, decay_steps=10, power=2.0, cycle=True)
    run("poly_up", "PolynomialDecay", 60, initial_learning_rate=0.01, decay_steps=20, end_learning_rate=0.1)
    run("cos", "CosineDecay", 300, initial_learning_rate=0.1, decay_steps=100)
    run("cos_alpha", "CosineDecay", 150, initial_learning_rate=0.1, decay_steps=50, alpha=0.1)
    run("cos_warmup", "CosineDecay", 330, initial_learning_rate=0.0, decay_steps=100, warmup_target=0.1,
        warmup_steps=10)
    run("cos_warmup_alpha", "CosineDecay", 180, initial_learning_rate=0.01, decay_steps=50, alpha=0.05,
        warmup_target=0.2, warmup_steps=10)
    run("cos_warmup_zero", "CosineDecay", 150, initial_learning_rate=0.0, decay_steps=50, warmup_target=0.1,
        warmup_steps=0)
    run("cosr", "CosineDecayRestarts", 150, initial_learning_rate=0.1, first_decay_steps=10)
    run("cosr_tmul1", "CosineDecayRestarts", 60, initial_learning_rate=0.1, first_decay_steps=10, t_mul=1.0)
    run("cosr_mmul", "CosineDecayRestarts", 150, initial_learning_rate=1.0, first_decay_steps=10, m_mul=0.5,
        alpha=0.1)
    run("cosr_t15", "CosineDecayRestarts", 200, initial_learning_rate=0.1, first_decay_steps=8, t_mul=1.5,
        m_mul=0.8, alpha=0.05)
    run("cosr_t3", "CosineDecayRestarts", 200, initial_learning_rate=0.1, first_decay_steps=5, t_mul=3.0)

    run("err_exp_steps", "ExponentialDecay", 5, initial_learning_rate=0.1, decay_steps=0, decay_rate=0.5)
    run("err_invtime_steps", "InverseTimeDecay", 5, initial_learning_rate=0.1, decay_steps=0, decay_rate=0.5)
    run("err_poly_steps", "PolynomialDecay", 5, initial_learning_rate=0.1, decay_steps=0)
    run("err_cos_steps", "CosineDecay", 5, initial_learning_rate=0.1, decay_steps=0)
    run("err_cosr_steps", "CosineDecayRestarts", 5, initial_learning_rate=0.1, first_decay_steps=0)
    run("err_piecewise_len", "PiecewiseConstantDecay", 5, boundaries=[1, 2], values=[0.1, 0.01])
    return {"keras": keras.__version__, "jax": jax.__version__}, cases, errors


# ---------------------------------------------------------------------------------------------
# timm (by update count: t_in_epochs=False, step_update)
# ---------------------------------------------------------------------------------------------

def timm_cases():
    import logging
    import warnings

    import timm
    import torch
    from timm import scheduler as T

    logging.getLogger("timm").setLevel(logging.ERROR)
    cases, errors = [], []

    def run(name, cls, lr, steps, **kw):
        cfg = {"name": name, "class": cls, "lr": lr, "kwargs": kw}
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
        try:
            sched = getattr(T, cls)(opt, t_in_epochs=False, **kw)
        except Exception as e:  # noqa: BLE001
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        lrs = []
        for t in range(steps):
            sched.step_update(t)
            lrs.append(float(opt.param_groups[0]["lr"]))
        cases.append({**cfg, "lr_values": lrs})

    run("cos", "CosineLRScheduler", 0.1, 150, t_initial=50)
    run("cos_min", "CosineLRScheduler", 0.1, 150, t_initial=50, lr_min=1e-3)
    run("cos_warm", "CosineLRScheduler", 0.1, 150, t_initial=50, warmup_t=5, warmup_lr_init=1e-4)
    run("cos_warm_prefix", "CosineLRScheduler", 0.1, 165, t_initial=50, warmup_t=5, warmup_lr_init=1e-4,
        warmup_prefix=True)
    run("cos_cycles", "CosineLRScheduler", 0.1, 120, t_initial=20, cycle_limit=3, lr_min=1e-3)
    run("cos_cycles_mul2", "CosineLRScheduler", 0.1, 230, t_initial=10, cycle_mul=2.0, cycle_limit=4,
        cycle_decay=0.5)
    run("cos_cycles_mul15", "CosineLRScheduler", 0.1, 200, t_initial=10, cycle_mul=1.5, cycle_limit=5,
        cycle_decay=0.8, lr_min=1e-4)
    run("cos_k", "CosineLRScheduler", 0.1, 120, t_initial=40, k_decay=2.0)
    run("cos_k_half_warm", "CosineLRScheduler", 0.1, 120, t_initial=40, k_decay=0.5, warmup_t=3)
    run("cos_inf_cycles", "CosineLRScheduler", 0.1, 90, t_initial=10, cycle_limit=100, cycle_decay=0.9)
    run("tanh", "TanhLRScheduler", 0.1, 150, t_initial=50)
    run("tanh_warm", "TanhLRScheduler", 0.1, 150, t_initial=50, warmup_t=5, warmup_lr_init=1e-4, lr_min=1e-3)
    run("tanh_warm_prefix", "TanhLRScheduler", 0.1, 165, t_initial=50, warmup_t=5, warmup_prefix=True)
    run("tanh_cycles", "TanhLRScheduler", 0.1, 150, t_initial=20, cycle_limit=3, cycle_mul=1.5, lb=-5.0, ub=4.0)
    run("step", "StepLRScheduler", 0.1, 60, decay_t=10, decay_rate=0.5)
    run("step_warm", "StepLRScheduler", 0.1, 65, decay_t=10, decay_rate=0.5, warmup_t=5, warmup_lr_init=1e-3)
    run("step_warm_overlay", "StepLRScheduler", 0.1, 60, decay_t=4, decay_rate=0.5, warmup_t=6,
        warmup_lr_init=1e-3, warmup_prefix=False)
    run("step_float", "StepLRScheduler", 0.1, 45, decay_t=7.5, decay_rate=0.8)
    run("multistep", "MultiStepLRScheduler", 0.1, 90, decay_t=[10, 20], decay_rate=0.5)
    run("multistep_warm", "MultiStepLRScheduler", 0.1, 90, decay_t=[10, 20], decay_rate=0.1, warmup_t=5,
        warmup_lr_init=1e-4)
    run("multistep_zero_dup", "MultiStepLRScheduler", 0.1, 30, decay_t=[0, 5, 5, 9], decay_rate=0.5)
    run("multistep_overlay", "MultiStepLRScheduler", 0.1, 60, decay_t=[3, 12], decay_rate=0.5, warmup_t=6,
        warmup_prefix=False)
    run("poly", "PolyLRScheduler", 0.1, 150, t_initial=50)
    run("poly_sq", "PolyLRScheduler", 0.1, 150, t_initial=50, power=2.0, lr_min=1e-3)
    run("poly_cycles", "PolyLRScheduler", 0.1, 150, t_initial=15, power=1.0, cycle_limit=3, cycle_decay=0.5)
    run("poly_k_warm", "PolyLRScheduler", 0.1, 150, t_initial=45, k_decay=1.5, warmup_t=5, warmup_lr_init=1e-3)
    run("poly_mul2", "PolyLRScheduler", 0.1, 210, t_initial=10, cycle_mul=2.0, cycle_limit=3)

    def run_plateau(name, lr, metrics, **kw):
        """PlateauLRScheduler, by epoch as timm's train.py: the lr after construction, then after each
        ``step(epoch, metric)`` for epoch = 1, 2, ... (``step_update`` checked to change nothing)."""
        cfg = {"name": name, "class": "PlateauLRScheduler", "lr": lr, "kwargs": kw}
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # timm: PlateauLRScheduler is deprecated
                sched = T.PlateauLRScheduler(opt, **kw)
        except Exception as e:  # noqa: BLE001
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        lrs = [float(opt.param_groups[0]["lr"])]
        for epoch, m in enumerate(metrics, start=1):
            sched.step_update(epoch * 100, m)
            assert float(opt.param_groups[0]["lr"]) == lrs[-1], "timm's step_update changed the plateau lr"
            sched.step(epoch, m)
            lrs.append(float(opt.param_groups[0]["lr"]))
        cases.append({**cfg, "metrics": list(metrics), "lr_values": lrs})

    acc = [0.1, 0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.65, 0.65, 0.65, 0.65, 0.65, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    loss = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55]
    run_plateau("plateau_defaults", 0.1, acc * 2)  # mode='max', patience_t=10
    run_plateau("plateau_min", 0.1, loss, mode="min", decay_rate=0.5, patience_t=2)
    run_plateau("plateau_max", 0.1, acc, decay_rate=0.5, patience_t=1, threshold=0.01)
    run_plateau("plateau_cooldown", 0.1, loss, mode="min", decay_rate=0.5, patience_t=0, cooldown_t=2)
    run_plateau("plateau_lr_min", 0.1, [1.0] * 12, mode="min", decay_rate=0.5, patience_t=0, lr_min=0.02)
    # during warmup timm ignores the metric: these good warmup losses must not become the best
    run_plateau("plateau_warmup", 0.1, [0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], mode="min",
                decay_rate=0.5, patience_t=1, warmup_t=3, warmup_lr_init=1e-4)
    run_plateau("plateau_warmup_max", 0.05, acc, decay_rate=0.2, patience_t=2, warmup_t=5)

    run("err_cos_t0", "CosineLRScheduler", 0.1, 5, t_initial=0)
    run("err_cos_lr_min", "CosineLRScheduler", 0.1, 5, t_initial=10, lr_min=-1.0)
    run("err_tanh_bounds", "TanhLRScheduler", 0.1, 5, t_initial=10, lb=3.0, ub=-7.0)
    run("err_tanh_warm", "TanhLRScheduler", 0.1, 5, t_initial=10, warmup_t=-1)
    run("err_poly_t0", "PolyLRScheduler", 0.1, 5, t_initial=0)
    run_plateau("err_plateau_decay", 0.1, [1.0], decay_rate=1.0)
    run_plateau("err_plateau_mode", 0.1, [1.0], mode="foo")
    return {"timm": timm.__version__, "torch": torch.__version__}, cases, errors


# ---------------------------------------------------------------------------------------------
# optax (runs in the project's own environment: optax is a dependency)
# ---------------------------------------------------------------------------------------------

def _optax_build(spec):
    """An optax schedule from ``{"function", "kwargs"}``: ``boundaries_and_scales`` is stored as [[step, scale],
    ...] (JSON keys are strings), ``schedules`` of join_schedules as nested specs."""
    import optax

    kw = dict(spec["kwargs"])
    if kw.get("boundaries_and_scales") is not None:
        kw["boundaries_and_scales"] = dict((b, s) for b, s in kw["boundaries_and_scales"])
    if "schedules" in kw:
        kw["schedules"] = [_optax_build(s) for s in kw["schedules"]]
    return getattr(optax.schedules, spec["function"])(**kw)


def optax_cases():
    """optax's schedule functions at the update count t = 0..n-1 (an int32 count, as optax's optimizers feed
    it), evaluated op by op. Jitted, XLA turns ``count / T`` into ``count * (1 / T)``, so ``1 - count / T``
    can come out a hair below 0 at the end of a polynomial decay and ``frac ** power`` NaN for a
    fractional power: such cases also record ``optax_jit_nonfinite_steps`` (lrjax gives the finite value).
    Errors: "construct"/"call" (optax raises), "nonfinite" (optax accepts, gives inf/NaN) and "accepted"
    (finite in optax, refused by lrjax: documented in docs/compat.md)."""
    import math

    import jax
    import jax.numpy as jnp
    import optax

    cases, errors = [], []

    def run(name, function, steps, lrjax_refuses=None, **kwargs):
        spec = {"function": function, "kwargs": kwargs}
        cfg = {"name": name, **spec}
        try:
            f = _optax_build(spec)
        except Exception as e:  # noqa: BLE001 - recorded
            errors.append(_error_record("construct", cfg, e, "construct"))
            return
        values, jitted = [], jax.jit(f)
        for t in range(steps):
            try:
                values.append(float(f(jnp.asarray(t, jnp.int32))))
            except Exception as e:  # noqa: BLE001 - optax fails only when called
                errors.append(_error_record("call", cfg, e, f"step {t}"))
                return
        bad = [t for t, v in enumerate(values) if not math.isfinite(v)]
        jit_bad = [t for t in range(steps) if not math.isfinite(float(jitted(jnp.asarray(t, jnp.int32))))]
        if jit_bad and not bad:
            cfg["optax_jit_nonfinite_steps"] = jit_bad
        if bad:
            errors.append({**cfg, "kind": "nonfinite", "error": "non-finite value", "when": f"step {bad[0]}",
                           "message": f"optax gives {values[bad[0]]} at step {bad[0]}"})
        elif lrjax_refuses:
            errors.append({**cfg, "kind": "accepted", "error": "refused by lrjax", "when": "construct",
                           "message": lrjax_refuses, "lr_values": values})
        else:
            cases.append({**cfg, "lr_values": values})

    def sub(function, **kwargs):
        return {"function": function, "kwargs": kwargs}

    def pairs(d):
        return [[b, s] for b, s in d.items()]

    # constant_schedule
    run("constant", "constant_schedule", 20, value=0.1)
    run("constant_zero", "constant_schedule", 10, value=0.0)
    run("constant_int", "constant_schedule", 10, value=3)
    run("constant_negative", "constant_schedule", 10, value=-0.5)
    # linear_schedule / warmup_constant_schedule
    run("linear", "linear_schedule", 150, init_value=1.0, end_value=0.0, transition_steps=100)
    run("linear_up", "linear_schedule", 80, init_value=0.0, end_value=1e-3, transition_steps=50)
    run("linear_begin", "linear_schedule", 100, init_value=0.5, end_value=0.1, transition_steps=40, transition_begin=20)
    run("linear_negative_begin", "linear_schedule", 40, init_value=1.0, end_value=0.0, transition_steps=20,
        transition_begin=-5)
    run("linear_zero_steps", "linear_schedule", 20, init_value=0.3, end_value=0.0, transition_steps=0)
    run("linear_negative_steps", "linear_schedule", 20, init_value=0.3, end_value=0.0, transition_steps=-3,
        transition_begin=5)
    run("linear_to_negative", "linear_schedule", 40, init_value=1.0, end_value=-1.0, transition_steps=25)
    run("linear_negative", "linear_schedule", 40, init_value=-0.2, end_value=-1.0, transition_steps=20,
        transition_begin=4)
    run("linear_float_steps", "linear_schedule", 30, init_value=1.0, end_value=0.2, transition_steps=10.5,
        transition_begin=2.5)
    run("linear_flat", "linear_schedule", 15, init_value=0.2, end_value=0.2, transition_steps=5)
    run("warmup_constant", "warmup_constant_schedule", 40, init_value=0.0, peak_value=1e-3, warmup_steps=10)
    run("warmup_constant_w0", "warmup_constant_schedule", 10, init_value=1e-4, peak_value=1e-3, warmup_steps=0)
    # polynomial_schedule
    run("poly_sq", "polynomial_schedule", 150, init_value=1.0, end_value=0.01, power=2, transition_steps=100)
    run("poly_doc_begin", "polynomial_schedule", 120, init_value=1.0, end_value=0.01, power=2, transition_steps=100,
        transition_begin=5)
    run("poly_sqrt", "polynomial_schedule", 60, init_value=0.1, end_value=0.0, power=0.5, transition_steps=40)
    run("poly_cube_begin", "polynomial_schedule", 80, init_value=0.5, end_value=0.05, power=3.0, transition_steps=30,
        transition_begin=10)
    run("poly_power0", "polynomial_schedule", 30, init_value=0.4, end_value=0.0, power=0, transition_steps=20)
    run("poly_zero_steps", "polynomial_schedule", 20, init_value=0.7, end_value=0.0, power=2, transition_steps=0)
    run("poly_negative_steps", "polynomial_schedule", 20, init_value=0.7, end_value=0.0, power=2,
        transition_steps=-10)
    run("poly_negative_begin", "polynomial_schedule", 50, init_value=1.0, end_value=0.0, power=2,
        transition_steps=30, transition_begin=-8)
    run("poly_up", "polynomial_schedule", 60, init_value=0.0, end_value=1.0, power=2, transition_steps=40)
    run("poly_to_negative", "polynomial_schedule", 60, init_value=1.0, end_value=-0.5, power=1.5,
        transition_steps=40, transition_begin=3)
    run("poly_float_steps", "polynomial_schedule", 40, init_value=1.0, end_value=0.1, power=2.0,
        transition_steps=12.5, transition_begin=1.5)
    # exponential_decay
    run("exp", "exponential_decay", 120, init_value=1.0, transition_steps=10, decay_rate=0.5)
    run("exp_stair", "exponential_decay", 90, init_value=0.1, transition_steps=10, decay_rate=0.5, staircase=True)
    run("exp_begin", "exponential_decay", 90, init_value=0.1, transition_steps=5, decay_rate=0.9, transition_begin=20)
    run("exp_begin_stair", "exponential_decay", 90, init_value=0.1, transition_steps=7, decay_rate=0.8,
        transition_begin=10, staircase=True)
    run("exp_end_floor", "exponential_decay", 120, init_value=1.0, transition_steps=10, decay_rate=0.5,
        end_value=0.2)
    run("exp_end_floor_begin", "exponential_decay", 100, init_value=1.0, transition_steps=10, decay_rate=0.5,
        transition_begin=15, end_value=0.3)
    run("exp_end_above_init", "exponential_decay", 60, init_value=0.1, transition_steps=10, decay_rate=0.5,
        transition_begin=10, end_value=0.5)
    run("exp_grow", "exponential_decay", 80, init_value=0.01, transition_steps=20, decay_rate=1.5)
    run("exp_grow_capped", "exponential_decay", 120, init_value=0.01, transition_steps=10, decay_rate=2.0,
        transition_begin=5, end_value=0.5)
    run("exp_grow_cap_below_init", "exponential_decay", 40, init_value=0.5, transition_steps=10, decay_rate=2.0,
        transition_begin=10, end_value=0.1)
    run("exp_grow_end_zero", "exponential_decay", 30, init_value=0.5, transition_steps=10, decay_rate=1.5,
        end_value=0.0)
    run("exp_rate1", "exponential_decay", 20, init_value=0.5, transition_steps=10, decay_rate=1.0)
    run("exp_rate1_end_below", "exponential_decay", 20, init_value=0.5, transition_steps=10, decay_rate=1.0,
        end_value=0.2)
    run("exp_rate0", "exponential_decay", 20, init_value=0.5, transition_steps=10, decay_rate=0.0, end_value=0.9)
    run("exp_zero_steps", "exponential_decay", 20, init_value=0.5, transition_steps=0, decay_rate=0.5, end_value=0.9)
    run("exp_negative_steps", "exponential_decay", 20, init_value=0.5, transition_steps=-4, decay_rate=0.5)
    run("exp_negative_begin", "exponential_decay", 60, init_value=1.0, transition_steps=10, decay_rate=0.7,
        transition_begin=-5)
    run("exp_end_negative", "exponential_decay", 60, init_value=1.0, transition_steps=10, decay_rate=0.7,
        end_value=-1.0)
    run("exp_float_steps", "exponential_decay", 50, init_value=1.0, transition_steps=2.5, decay_rate=0.9,
        transition_begin=1.5, staircase=True)
    run("exp_negative_init", "exponential_decay", 60, init_value=-1.0, transition_steps=10, decay_rate=0.5,
        transition_begin=5)
    run("exp_negative_init_end", "exponential_decay", 60, init_value=-1.0, transition_steps=10, decay_rate=0.5,
        end_value=-0.3)
    run("exp_negative_init_end_above", "exponential_decay", 30, init_value=-1.0, transition_steps=10,
        decay_rate=0.5, end_value=0.2)
    run("exp_negative_init_grow_end", "exponential_decay", 60, init_value=-0.1, transition_steps=10,
        decay_rate=1.5, transition_begin=3, end_value=-0.4)
    # cosine_decay_schedule
    run("cos", "cosine_decay_schedule", 150, init_value=0.1, decay_steps=100)
    run("cos_alpha", "cosine_decay_schedule", 80, init_value=1.0, decay_steps=50, alpha=0.1)
    run("cos_alpha1", "cosine_decay_schedule", 30, init_value=0.5, decay_steps=20, alpha=1.0)
    run("cos_alpha_above1", "cosine_decay_schedule", 60, init_value=0.5, decay_steps=40, alpha=1.5)
    run("cos_alpha_negative", "cosine_decay_schedule", 60, init_value=1.0, decay_steps=40, alpha=-0.5)
    run("cos_exp2", "cosine_decay_schedule", 60, init_value=1.0, decay_steps=40, exponent=2.0)
    run("cos_exp_half", "cosine_decay_schedule", 60, init_value=1.0, decay_steps=40, alpha=0.05, exponent=0.5)
    run("cos_exp0", "cosine_decay_schedule", 20, init_value=0.3, decay_steps=10, exponent=0.0)
    run("cos_negative_init", "cosine_decay_schedule", 40, init_value=-0.5, decay_steps=25, alpha=0.2)
    run("cos_zero_init", "cosine_decay_schedule", 20, init_value=0.0, decay_steps=10)
    run("cos_float_steps", "cosine_decay_schedule", 30, init_value=1.0, decay_steps=10.5, alpha=0.1)
    run("cos_one_step", "cosine_decay_schedule", 5, init_value=1.0, decay_steps=1)
    # warmup_cosine_decay_schedule
    run("wcos", "warmup_cosine_decay_schedule", 150, init_value=0.0, peak_value=1e-3, warmup_steps=10,
        decay_steps=100)
    run("wcos_end", "warmup_cosine_decay_schedule", 150, init_value=1e-5, peak_value=1e-3, warmup_steps=20,
        decay_steps=100, end_value=1e-5)
    run("wcos_w0", "warmup_cosine_decay_schedule", 80, init_value=0.0, peak_value=0.1, warmup_steps=0,
        decay_steps=50, end_value=0.01)
    run("wcos_w_negative", "warmup_cosine_decay_schedule", 80, init_value=0.0, peak_value=0.1, warmup_steps=-5,
        decay_steps=50)
    run("wcos_peak0", "warmup_cosine_decay_schedule", 60, init_value=0.1, peak_value=0.0, warmup_steps=10,
        decay_steps=40, end_value=0.05)
    run("wcos_end_above_peak", "warmup_cosine_decay_schedule", 80, init_value=0.0, peak_value=0.1, warmup_steps=10,
        decay_steps=50, end_value=0.3)
    run("wcos_exp2", "warmup_cosine_decay_schedule", 80, init_value=0.0, peak_value=1.0, warmup_steps=5,
        decay_steps=50, end_value=0.1, exponent=2.0)
    run("wcos_init_above_peak", "warmup_cosine_decay_schedule", 80, init_value=0.5, peak_value=0.1, warmup_steps=10,
        decay_steps=50)
    run("wcos_end_negative", "warmup_cosine_decay_schedule", 80, init_value=0.0, peak_value=0.1, warmup_steps=10,
        decay_steps=50, end_value=-0.05)
    run("wcos_init_negative", "warmup_cosine_decay_schedule", 80, init_value=-0.1, peak_value=0.2, warmup_steps=10,
        decay_steps=50)
    run("wcos_float_w", "warmup_cosine_decay_schedule", 60, init_value=0.0, peak_value=1.0, warmup_steps=2.5,
        decay_steps=40)
    run("wcos_w1", "warmup_cosine_decay_schedule", 30, init_value=0.0, peak_value=1.0, warmup_steps=1,
        decay_steps=20)
    # warmup_exponential_decay_schedule
    run("wexp", "warmup_exponential_decay_schedule", 100, init_value=0.0, peak_value=1e-3, warmup_steps=10,
        transition_steps=10, decay_rate=0.7)
    run("wexp_end", "warmup_exponential_decay_schedule", 100, init_value=1e-4, peak_value=1e-3, warmup_steps=10,
        transition_steps=5, decay_rate=0.5, end_value=1e-4)
    run("wexp_end_above_peak", "warmup_exponential_decay_schedule", 60, init_value=0.0, peak_value=0.1,
        warmup_steps=10, transition_steps=5, decay_rate=0.5, end_value=0.3)
    run("wexp_begin_stair", "warmup_exponential_decay_schedule", 100, init_value=0.0, peak_value=0.1,
        warmup_steps=10, transition_steps=7, decay_rate=0.5, transition_begin=15, staircase=True)
    run("wexp_w0", "warmup_exponential_decay_schedule", 50, init_value=0.0, peak_value=0.1, warmup_steps=0,
        transition_steps=5, decay_rate=0.8)
    run("wexp_w_negative", "warmup_exponential_decay_schedule", 50, init_value=0.0, peak_value=0.1,
        warmup_steps=-3, transition_steps=5, decay_rate=0.8)
    run("wexp_grow_cap", "warmup_exponential_decay_schedule", 80, init_value=0.0, peak_value=0.01, warmup_steps=5,
        transition_steps=5, decay_rate=2.0, end_value=0.1)
    run("wexp_zero_steps", "warmup_exponential_decay_schedule", 30, init_value=0.0, peak_value=0.1, warmup_steps=5,
        transition_steps=0, decay_rate=0.5)
    run("wexp_negative_peak", "warmup_exponential_decay_schedule", 50, init_value=0.0, peak_value=-0.1,
        warmup_steps=5, transition_steps=10, decay_rate=0.5)
    # piecewise_constant_schedule
    run("pc", "piecewise_constant_schedule", 40, init_value=1.0, boundaries_and_scales=pairs({10: 0.5, 20: 0.1}))
    run("pc_doc", "piecewise_constant_schedule", 300, init_value=1.0,
        boundaries_and_scales=pairs({100: 0.1, 200: 0.01}))
    run("pc_none", "piecewise_constant_schedule", 10, init_value=0.3)
    run("pc_empty", "piecewise_constant_schedule", 10, init_value=0.3, boundaries_and_scales=[])
    run("pc_at_zero", "piecewise_constant_schedule", 20, init_value=1.0, boundaries_and_scales=pairs({0: 0.5, 5: 0.5}))
    run("pc_negative_boundary", "piecewise_constant_schedule", 30, init_value=1.0,
        boundaries_and_scales=pairs({-5: 0.5, 10: 2.0}))
    run("pc_float_boundary", "piecewise_constant_schedule", 20, init_value=1.0,
        boundaries_and_scales=pairs({2.5: 0.5, 7.5: 0.5}))
    run("pc_scale0", "piecewise_constant_schedule", 20, init_value=1.0, boundaries_and_scales=pairs({5: 0.0, 10: 3.0}))
    run("pc_grow", "piecewise_constant_schedule", 30, init_value=0.01, boundaries_and_scales=pairs({5: 10.0, 15: 2.0}))
    run("pc_unsorted", "piecewise_constant_schedule", 40, init_value=1.0,
        boundaries_and_scales=pairs({20: 0.1, 10: 0.5, 30: 0.5}))
    run("pc_negative_init", "piecewise_constant_schedule", 30, init_value=-1.0,
        boundaries_and_scales=pairs({10: 0.5, 20: 0.1}))
    # piecewise_interpolate_schedule
    run("pi_linear_doc", "piecewise_interpolate_schedule", 12, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({4: 0.1, 8: 0.01}))
    run("pi_cosine", "piecewise_interpolate_schedule", 60, interpolate_type="cosine", init_value=1.0,
        boundaries_and_scales=pairs({10: 0.1, 40: 0.5}))
    run("pi_cosine_up_down", "piecewise_interpolate_schedule", 60, interpolate_type="cosine", init_value=0.1,
        boundaries_and_scales=pairs({10: 4.0, 20: 0.25, 35: 1.0}))
    run("pi_linear_up", "piecewise_interpolate_schedule", 40, interpolate_type="linear", init_value=0.1,
        boundaries_and_scales=pairs({15: 10.0}))
    run("pi_at_zero", "piecewise_interpolate_schedule", 30, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({0: 0.5, 10: 0.1}))
    run("pi_negative_boundary", "piecewise_interpolate_schedule", 30, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({-5: 0.5, 10: 0.1}))
    run("pi_all_negative", "piecewise_interpolate_schedule", 10, interpolate_type="cosine", init_value=1.0,
        boundaries_and_scales=pairs({-5: 0.5, -2: 0.1}))
    run("pi_fractional", "piecewise_interpolate_schedule", 20, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({0.5: 2.0, 3: 0.5, 3.5: 0.1}))
    run("pi_short_interval", "piecewise_interpolate_schedule", 20, interpolate_type="cosine", init_value=1.0,
        boundaries_and_scales=pairs({5: 2.0, 5.5: 0.5, 9: 0.1}))
    run("pi_subunit_interval", "piecewise_interpolate_schedule", 20, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({2.5: 2.0, 3.2: 0.5, 6: 0.1}))
    run("pi_subunit_interval_cos", "piecewise_interpolate_schedule", 20, interpolate_type="cosine", init_value=1.0,
        boundaries_and_scales=pairs({2.5: 2.0, 3.2: 0.5, 6: 0.1}))
    run("pi_none", "piecewise_interpolate_schedule", 10, interpolate_type="cosine", init_value=0.2)
    run("pi_empty", "piecewise_interpolate_schedule", 10, interpolate_type="linear", init_value=0.2,
        boundaries_and_scales=[])
    run("pi_negative_init", "piecewise_interpolate_schedule", 30, interpolate_type="cosine", init_value=-1.0,
        boundaries_and_scales=pairs({10: 0.1, 20: 2.0}))
    run("pi_scale0", "piecewise_interpolate_schedule", 30, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({10: 0.0, 20: 5.0}))
    # linear_onecycle_schedule
    run("loc", "linear_onecycle_schedule", 150, transition_steps=100, peak_value=1e-3)
    run("loc_pcts", "linear_onecycle_schedule", 90, transition_steps=60, peak_value=0.1, pct_start=0.2,
        pct_final=0.5, div_factor=10.0, final_div_factor=100.0)
    run("loc_same_pcts", "linear_onecycle_schedule", 60, transition_steps=40, peak_value=0.1, pct_start=0.5,
        pct_final=0.5)
    run("loc_final_at_end", "linear_onecycle_schedule", 60, transition_steps=40, peak_value=0.1, pct_final=1.0)
    run("loc_small", "linear_onecycle_schedule", 10, transition_steps=5, peak_value=1.0)
    run("loc_negative_peak", "linear_onecycle_schedule", 60, transition_steps=40, peak_value=-0.1)
    # cosine_onecycle_schedule
    run("coc", "cosine_onecycle_schedule", 150, transition_steps=100, peak_value=1e-3)
    run("coc_factors", "cosine_onecycle_schedule", 80, transition_steps=50, peak_value=0.1, pct_start=0.25,
        div_factor=10.0, final_div_factor=100.0)
    run("coc_pct0", "cosine_onecycle_schedule", 40, transition_steps=30, peak_value=0.1, pct_start=0.0)
    run("coc_pct1", "cosine_onecycle_schedule", 40, transition_steps=30, peak_value=0.1, pct_start=1.0)
    run("coc_pct_above1", "cosine_onecycle_schedule", 70, transition_steps=30, peak_value=0.1, pct_start=1.5)
    run("coc_pct_negative", "cosine_onecycle_schedule", 50, transition_steps=30, peak_value=0.1, pct_start=-0.2)
    run("coc_small", "cosine_onecycle_schedule", 12, transition_steps=7, peak_value=1.0)
    run("coc_float_steps", "cosine_onecycle_schedule", 80, transition_steps=50.5, peak_value=0.1)
    run("coc_negative_peak", "cosine_onecycle_schedule", 50, transition_steps=30, peak_value=-0.1)
    # sgdr_schedule
    run("sgdr", "sgdr_schedule", 200, cosine_kwargs=[
        dict(init_value=0.0, peak_value=1e-3, warmup_steps=5, decay_steps=50),
        dict(init_value=0.0, peak_value=5e-4, warmup_steps=5, decay_steps=100)])
    run("sgdr_three", "sgdr_schedule", 150, cosine_kwargs=[
        dict(init_value=1e-4, peak_value=0.1, warmup_steps=0, decay_steps=30, end_value=1e-3),
        dict(init_value=1e-3, peak_value=0.05, warmup_steps=3, decay_steps=30, end_value=1e-3, exponent=2.0),
        dict(init_value=1e-3, peak_value=0.02, warmup_steps=3, decay_steps=40)])
    # join_schedules
    run("join", "join_schedules", 80, schedules=[
        sub("constant_schedule", value=0.1), sub("linear_schedule", init_value=0.1, end_value=0.0,
                                                 transition_steps=50)], boundaries=[20])
    run("join_three", "join_schedules", 90, schedules=[
        sub("linear_schedule", init_value=0.0, end_value=0.1, transition_steps=10),
        sub("cosine_decay_schedule", init_value=0.1, decay_steps=40, alpha=0.1),
        sub("exponential_decay", init_value=0.01, transition_steps=5, decay_rate=0.9)], boundaries=[10, 50])
    run("join_override", "join_schedules", 50, schedules=[
        sub("constant_schedule", value=1.0), sub("constant_schedule", value=0.5),
        sub("linear_schedule", init_value=0.3, end_value=0.0, transition_steps=20)], boundaries=[30, 10])
    run("join_at_zero", "join_schedules", 30, schedules=[
        sub("constant_schedule", value=1.0), sub("linear_schedule", init_value=0.5, end_value=0.0,
                                                 transition_steps=20)], boundaries=[0])
    run("join_negative_boundary", "join_schedules", 30, schedules=[
        sub("constant_schedule", value=1.0), sub("linear_schedule", init_value=0.5, end_value=0.0,
                                                 transition_steps=20), sub("constant_schedule", value=0.2)],
        boundaries=[-5, 12])
    run("join_extra_boundaries", "join_schedules", 40, schedules=[
        sub("constant_schedule", value=1.0), sub("constant_schedule", value=0.5)], boundaries=[10, 20, 30])
    run("join_extra_schedules", "join_schedules", 40, schedules=[
        sub("constant_schedule", value=1.0), sub("constant_schedule", value=0.5),
        sub("constant_schedule", value=0.1)], boundaries=[10])
    run("join_negative_values", "join_schedules", 40, schedules=[
        sub("linear_schedule", init_value=0.0, end_value=-1.0, transition_steps=10),
        sub("cosine_decay_schedule", init_value=-1.0, decay_steps=20)], boundaries=[10])

    # Refused: optax raises (construct/call) or gives inf/NaN (nonfinite); or accepts, lrjax refuses (accepted)
    run("err_cos_steps0", "cosine_decay_schedule", 5, init_value=0.1, decay_steps=0)
    run("err_cos_steps_negative", "cosine_decay_schedule", 5, init_value=0.1, decay_steps=-5)
    run("err_cos_exponent_negative", "cosine_decay_schedule", 15, init_value=0.1, decay_steps=10, exponent=-1.0)
    run("err_poly_power_negative", "polynomial_schedule", 15, init_value=1.0, end_value=0.0, power=-1.0,
        transition_steps=10)
    run("err_exp_rate_negative", "exponential_decay", 15, init_value=1.0, transition_steps=10, decay_rate=-0.5)
    run("err_exp_rate_negative_stair", "exponential_decay", 25, lrjax_refuses="a negative decay_rate "
        "(alternating signs with staircase=True)", init_value=1.0, transition_steps=10, decay_rate=-0.5,
        staircase=True)
    run("err_wcos_d_eq_w", "warmup_cosine_decay_schedule", 5, init_value=0.0, peak_value=0.1, warmup_steps=10,
        decay_steps=10)
    run("err_wcos_d_lt_w", "warmup_cosine_decay_schedule", 5, init_value=0.0, peak_value=0.1, warmup_steps=10,
        decay_steps=5)
    run("err_wcos_exponent_negative", "warmup_cosine_decay_schedule", 30, init_value=0.0, peak_value=0.1,
        warmup_steps=5, decay_steps=20, exponent=-2.0)
    run("err_pc_negative_scale", "piecewise_constant_schedule", 5, init_value=1.0,
        boundaries_and_scales=pairs({5: -0.5}))
    run("err_pi_type", "piecewise_interpolate_schedule", 5, interpolate_type="exp", init_value=1.0,
        boundaries_and_scales=pairs({5: 0.5}))
    run("err_pi_negative_scale", "piecewise_interpolate_schedule", 5, interpolate_type="linear", init_value=1.0,
        boundaries_and_scales=pairs({5: 0.5, 10: -1.0}))
    run("err_loc_steps0", "linear_onecycle_schedule", 5, transition_steps=0, peak_value=0.1)
    run("err_loc_div0", "linear_onecycle_schedule", 5, transition_steps=10, peak_value=0.1, div_factor=0.0)
    run("err_loc_final_div_negative", "linear_onecycle_schedule", 5, transition_steps=10, peak_value=0.1,
        final_div_factor=-10.0)
    run("err_coc_steps_negative", "cosine_onecycle_schedule", 5, transition_steps=-1, peak_value=0.1)
    run("err_coc_div0", "cosine_onecycle_schedule", 5, transition_steps=10, peak_value=0.1, div_factor=0.0)
    run("err_coc_final_div0", "cosine_onecycle_schedule", 5, transition_steps=10, peak_value=0.1,
        final_div_factor=0.0)
    run("err_sgdr_empty", "sgdr_schedule", 5, cosine_kwargs=[])
    run("err_sgdr_bad_key", "sgdr_schedule", 5, cosine_kwargs=[dict(init_value=0.0, peak_value=0.1,
                                                                    warmup_steps=1, decay_steps=10, alpha=0.1)])
    run("err_join_empty", "join_schedules", 5, schedules=[], boundaries=[])
    return {"optax": optax.__version__, "jax": jax.__version__}, cases, errors


def main(argv: list[str]) -> None:
    which = argv[1:] or ["torch", "transformers", "keras", "timm"]
    makers = {"torch": torch_cases, "transformers": transformers_cases, "keras": keras_cases, "timm": timm_cases,
              "optax": optax_cases}
    for name in which:
        versions, cases, errors = makers[name]()
        _write(name, versions, _clean(cases), _clean(errors))


if __name__ == "__main__":
    main(sys.argv)
