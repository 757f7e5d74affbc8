"""The typed config schema: defaults, overrides, and errors that name the key path."""

import pytest

from lrjax.engine import Config, ConfigError, config_from_dict, config_to_dict, load_config
from lrjax.engine._config import parse_duration, resolve_durations


def test_defaults_live_in_the_schema():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.optimizer.name == "adamw" and cfg.data.source == "digits" and cfg.train.steps == 600
    assert cfg.schedule["name"] == "warmup"


def test_overrides_parse_values_as_yaml():
    cfg = load_config(None, ["train.steps=120", "model.hidden=[32, 16]", "optimizer.clip_norm=1.0",
                             "schedule={name: constant, value: 0.01}", "data.normalize=false"])
    assert cfg.train.steps == 120
    assert cfg.model.hidden == (32, 16)
    assert cfg.optimizer.clip_norm == 1.0
    assert cfg.schedule == {"name": "constant", "value": 0.01}
    assert cfg.data.normalize is False


def test_yaml_file_and_roundtrip(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ntrain: {steps: 50}\noptimizer: {name: sgd, args: {momentum: 0.9}}\n")
    cfg = load_config(p, ["train.seed=3"])
    assert (cfg.name, cfg.train.steps, cfg.train.seed, cfg.optimizer.args) == ("x", 50, 3, {"momentum": 0.9})
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize("override, match", [
    ("train.stepz=5", r"unknown key 'train.stepz' \(did you mean 'steps'\?\); valid keys in 'train': steps"),
    ("trian.steps=5", r"unknown key 'trian' \(did you mean 'train'\?\)"),
    ("train.steps=abc", r"train.steps must be an integer, got train.steps='abc'"),
    ("train.steps=1.5", r"train.steps must be an integer, got train.steps=1.5"),
    ("data.normalize=3", r"data.normalize must be true/false, got data.normalize=3"),
    ("model.kind=mpl", r"model.kind must be one of 'mlp', 'cnn', 'resnet', got model.kind='mpl' \(did you mean 'mlp'\?\)"),
    ("train.on_nonfinite=ignore", r"train.on_nonfinite must be one of 'stop', 'skip'"),
    ("model.hidden=[32, x]", r"model.hidden\[1\] must be an integer, got model.hidden\[1\]='x'"),
    ("train.steps=0", r"train.steps must be > 0, got train.steps=0"),
    ("data.test_fraction=1.5", r"data.test_fraction must be in \(0, 1\), got data.test_fraction=1.5"),
    ("optimizer.name=adamx", r"optimizer.name must be an optax optimizer, got optimizer.name='adamx' \(did you mean 'adamax'\?\); choices: .*adamw"),
    ("optimizer.batch_scaling=linear", r"optimizer.batch_scaling='linear' needs optimizer.base_batch_size"),
    ("optimizer.args.learning_rate=0.1", r"optimizer.args.learning_rate: the learning rate is the top-level 'schedule'"),
    ("schedule={name: cosine, peak: 1}", r"schedule: unknown schedule name 'cosine' \(did you mean 'cosine_decay'\?\)"),
    ("schedule={name: constant, valu: 1}", r"schedule: unknown key 'valu' for schedule 'constant' \(did you mean 'value'\?\)"),
    ("schedule.warmup_steps=700", r"schedule.warmup_steps=700 is longer than the run \(train.steps=600\)"),
    ("schedule.warmup_steps=10 parsecs", r"schedule.warmup_steps='10 parsecs': a duration is a number of steps"),
    ("train", r"--set expects key=value"),
])
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_top_level_must_be_a_mapping(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml: a config must be a mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_durations_resolve_through_to_steps():
    assert parse_duration("10%", "x") == (0.1, "fraction")
    assert parse_duration("2 epochs", "x") == (2.0, "epochs")
    spec = {"name": "warmup", "warmup_steps": "10%", "schedule": {"name": "cosine_decay", "peak": 1e-3,
                                                                  "decay_steps": "2 epochs"}}
    out = resolve_durations(spec, total_steps=600, batch_size=64, num_examples=1438)
    assert out["warmup_steps"] == 60
    assert out["schedule"]["decay_steps"] == 2 * (1438 // 64)
    # mode names that start with a digit are not durations
    assert resolve_durations({"name": "wsd", "decay_shape": "1-sqrt"}, total_steps=10)["decay_shape"] == "1-sqrt"


def test_every_numeric_form_people_write_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-3 and 3E-4 as strings; configs, overrides and sweeps read them as numbers."""
    p = tmp_path / "c.yaml"
    p.write_text("schedule: {name: warmup, warmup_steps: 1_0, schedule: {name: cosine_decay, peak: 1e-3, "
                 "decay_steps: 90}}\noptimizer: {args: {weight_decay: 3E-4}}\ntrain: {steps: 1_000}\n")
    cfg = load_config(p, ["data.test_fraction=.25", "schedule.schedule.floor=+1e-5"])
    assert cfg.schedule["schedule"]["peak"] == 1e-3 and cfg.optimizer.args["weight_decay"] == 3e-4
    assert cfg.schedule["warmup_steps"] == 10 and cfg.train.steps == 1000 and cfg.data.test_fraction == 0.25
    assert cfg.schedule["schedule"]["floor"] == 1e-5
    assert load_config(None, ["schedule.schedule.peak=1e-2"]).schedule["schedule"]["peak"] == 0.01
    # strings stay strings: durations, mode names
    assert load_config(None, ["schedule.warmup_steps=10%"]).schedule["warmup_steps"] == "10%"
