"""Sweep files: expansion order and labels, merging rules, errors that name the key."""

import pytest

from lrjax.sweep import SweepError, expand, load_sweep, strategy_of, sweep_from_dict
from lrjax.sweep._spec import merge
from lrjax.sweep.strategies import known_lengths

SHORT = {"train": {"steps": 20}}


def test_grid_times_list_in_order_with_labels():
    spec = sweep_from_dict({
        "config": SHORT,
        "configs": [{"label": "const", "schedule": {"name": "constant", "value": 1e-3}}, {"label": "default"}],
        "grid": {"train.seed": [0, 1], "optimizer.args.weight_decay": [0.0, 1e-4]},
    })
    out = expand(spec)
    assert [c.label for c in out] == [
        "const seed=0 weight_decay=0", "const seed=0 weight_decay=0.0001",
        "const seed=1 weight_decay=0", "const seed=1 weight_decay=0.0001",
        "default seed=0 weight_decay=0", "default seed=0 weight_decay=0.0001",
        "default seed=1 weight_decay=0", "default seed=1 weight_decay=0.0001",
    ]
    c = out[3].config
    assert c.schedule == {"name": "constant", "value": 1e-3}  # replaced whole, not merged with warmup keys
    assert (c.train.seed, c.optimizer.args, c.train.steps) == (1, {"weight_decay": 1e-4}, 20)
    assert out[4].config.schedule["name"] == "warmup"  # the default schedule kept
    assert out[3].values == {"train.seed": 1, "optimizer.args.weight_decay": 1e-4}
    assert c.name == "const_seed=1_weight_decay=0.0001"


def test_merge_rules():
    base = {"schedule": {"name": "warmup", "warmup_steps": 10}, "optimizer": {"name": "adamw", "args": {"b1": 0.8}},
            "train": {"steps": 5, "seed": 1}}
    out = merge(base, {"schedule": {"name": "constant"}, "optimizer": {"args": {"momentum": 0.9}, "name": "sgd"},
                       "train": {"steps": 7}, "schedule.value": 0.1}, "x")
    assert out["schedule"] == {"name": "constant", "value": 0.1}
    assert out["optimizer"] == {"name": "sgd", "args": {"momentum": 0.9}}
    assert out["train"] == {"steps": 7, "seed": 1}
    assert base["train"]["steps"] == 5  # inputs untouched


def test_grid_key_names_are_shortest_unique_suffixes():
    spec = sweep_from_dict({"config": SHORT, "grid": {"schedule.schedule.peak": [1e-3], "schedule.warmup_steps": [5],
                                                      "data.batch_size": [32]}})
    assert [c.label for c in expand(spec)] == ["peak=0.001 warmup_steps=5 batch_size=32"]


def test_load_sweep_reads_base_relative_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("schedule: {name: constant, value: 0.01}\ntrain: {steps: 30}\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\ngrid: {schedule.value: [0.01, 0.02]}\nmax_parallel: 8\n")
    spec = load_sweep(tmp_path / "s.yaml", ["max_parallel=2", "config.train.steps=12"])
    assert spec.max_parallel == 2
    cfgs = expand(spec)
    assert [c.config.schedule["value"] for c in cfgs] == [0.01, 0.02]
    assert all(c.config.train.steps == 12 for c in cfgs)


def test_grid_overrides_take_the_whole_dotted_key(tmp_path):
    """``--set grid.train.seed=[0,1]`` adds a seed axis; ``grid.schedule.value=...`` replaces an axis."""
    (tmp_path / "s.yaml").write_text("config: {schedule: {name: constant, value: 0.01}}\n"
                                     "grid: {schedule.value: [0.01, 0.02]}\n")
    spec = load_sweep(tmp_path / "s.yaml", ["grid.train.seed=[0, 1]", "grid.schedule.value=[0.05]"])
    cfgs = expand(spec)
    assert [(c.config.schedule["value"], c.config.train.seed) for c in cfgs] == [(0.05, 0), (0.05, 1)]
    (tmp_path / "nogrid.yaml").write_text("config: {train: {steps: 10}}\n")
    assert len(expand(load_sweep(tmp_path / "nogrid.yaml", ["grid.train.seed=[3, 4, 5]"]))) == 3
    with pytest.raises(SweepError, match=r"grid.train.seed must be a non-empty list of values, got grid.train.seed=7"):
        load_sweep(tmp_path / "s.yaml", ["grid.train.seed=7"])
    with pytest.raises(SweepError, match=r"--set grid.train.seed: cannot parse value '\[0,' as YAML"):
        load_sweep(tmp_path / "s.yaml", ["grid.train.seed=[0,"])


@pytest.mark.parametrize("data, match", [
    ({"grdi": {}}, r"unknown sweep key 'grdi' \(did you mean 'grid'\?\)"),
    ({"grid": {"train.seed": 3}}, r"grid.train.seed must be a non-empty list of values, got grid.train.seed=3"),
    ({"grid": {"train.seed": []}}, r"grid.train.seed must be a non-empty list"),
    ({"configs": [{"label": "a"}, {"label": "a"}]}, r"labels must be unique, got 'a'"),
    ({"configs": {"a": 1}}, r"configs must be a list of mappings"),
    ({"target": {"metric": "acc"}}, r"target.metric must be one of accuracy, loss, r2, got target.metric='acc' "
                                    r"\(did you mean 'accuracy'\?\)"),
    ({"target": {"value": "high"}}, r"target.value must be a number"),
    ({"rank_by": "test_accuracy"}, r"rank_by must be one of accuracy, loss, r2, got rank_by='test_accuracy'"),
    ({"strategy": 3}, r"strategy must be a mapping with a name \(cooldowns, grid, halving, pbt\), got strategy=3"),
    ({"max_parallel": 0}, r"max_parallel must be an integer >= 1, got max_parallel=0"),
    ({"base": 3}, r"base must be a path to a training config or a mapping, got base=3"),
    ({"base": "/nonexistent/x.yaml"}, r"file '/nonexistent/x.yaml' does not exist"),
])
def test_bad_sweeps(data, match):
    with pytest.raises(SweepError, match=match):
        sweep_from_dict(data)


def test_bad_configuration_names_its_label():
    spec = sweep_from_dict({"config": SHORT, "configs": [{"label": "bad", "schedule": {"name": "constant",
                                                                                       "value": -1}}]})
    with pytest.raises(SweepError, match=r"configuration 'bad': .*value must be >= 0, got value=-1"):
        expand(spec)
    spec = sweep_from_dict({"config": SHORT, "grid": {"train.stepz": [1]}})
    with pytest.raises(SweepError, match=r"configuration 'stepz=1': unknown key 'train.stepz' \(did you mean 'steps'"):
        expand(spec)


def test_shipped_recipes_expand():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "configs" / "sweeps"
    sizes = {p.stem: len(expand(load_sweep(p))) for p in sorted(root.glob("*.yaml"))}
    assert {k: sizes[k] for k in ("schedules", "seeds", "warmup_cosine_grid", "mnist1d_grid", "halving", "pbt")} == \
        {"schedules": 9, "seeds": 6, "warmup_cosine_grid": 16, "mnist1d_grid": 16, "halving": 16, "pbt": 16}
    strategies = {"halving": "halving", "pbt": "pbt", "halving_annealed": "halving", "horizons_mnist1d": "cooldowns",
                  "horizons_lm": "cooldowns", "lm_schedules": "grid"}
    for stem, name in strategies.items():  # the strategies validate against their configurations
        spec = load_sweep(root / f"{stem}.yaml")
        assert strategy_of(spec, expand(spec)).name == name
    lm = load_sweep(root / "horizons_lm.yaml")  # horizons in tokens: 250K tokens of 32 x 64 = 122 updates
    members = strategy_of(lm, expand(lm)).expand([known_lengths(c.config) for c in expand(lm)], ["lm"])
    horizons = sorted({p.role["horizon"] for p in members if p.role["run"] == "cooldown"})
    assert horizons == [122, 244, 366, 488, 610, 732, 854, 977], horizons
    labels = [c.label for c in expand(load_sweep(root / "schedules.yaml"))]
    assert labels == ["constant", "step", "exponential", "inverse-time", "cosine", "warmup+cosine", "one-cycle",
                      "cyclic", "restarts"]


def test_sweep_files_read_every_numeric_form(tmp_path):
    (tmp_path / "s.yaml").write_text("config: {train: {steps: 20}}\n"
                                     "grid: {schedule.schedule.peak: [1e-3, 3E-3], optimizer.args.weight_decay: [1e-4]}\n")
    cfgs = expand(load_sweep(tmp_path / "s.yaml", ["grid.train.seed=[0]"]))
    assert [c.config.schedule["schedule"]["peak"] for c in cfgs] == [1e-3, 3e-3]
    assert [c.label for c in cfgs] == ["peak=0.001 weight_decay=0.0001 seed=0", "peak=0.003 weight_decay=0.0001 seed=0"]
