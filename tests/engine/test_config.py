"""The typed config schema: defaults, overrides, and errors that name the key path."""

import re

import pytest

from lrjax.engine import Config, ConfigError, config_from_dict, config_to_dict, load_config
from lrjax.engine._config import (
    DroppedArgumentsWarning,
    TrainCounts,
    parse_duration,
    resolve_durations,
    resolve_train,
    train_counts,
    train_steps,
)


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
    ("train.steps=abc", r"train.steps must be a number of updates or a duration like '5 epochs', '500 steps' or "
                        r"'60000 examples', got train.steps='abc'"),
    ("train.steps=1.5", r"train.steps must be a whole number of updates or a duration like '5 epochs'.*, got "
                        r"train.steps=1.5"),
    ("train.steps=50%", r"train.steps='50%': a percentage is of train.steps itself"),
    ("train.eval_every=0 epochs", r"train.eval_every='0 epochs' must be more than 0"),
    ("train.log_every=0", r"train.log_every must be > 0, got train.log_every=0"),
    ("train.eval_every=often", r"train.eval_every must be a number of updates or a duration like '10%' \(of "
                               r"train.steps\), '5 epochs'.*got train.eval_every='often'"),
    ("data.normalize=3", r"data.normalize must be true/false, got data.normalize=3"),
    ("model.kind=mpl", r"model.kind must be one of 'mlp', 'cnn', 'resnet', 'transformer', got model.kind='mpl' \(did you mean 'mlp'\?\)"),
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


def test_tensorboard_without_the_package_is_refused_while_validating(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails, find_spec says absent
    with pytest.raises(ConfigError, match=r"^train.tensorboard=true needs the tensorboard package, which is not "
                                          r"installed: pip install 'lrjax\[tensorboard\]' \(or set "
                                          r"train.tensorboard=false\)$"):
        load_config(None, ["train.tensorboard=true"])
    assert load_config(None, ["train.tensorboard=false"]).train.tensorboard is False


@pytest.mark.parametrize("override, path", [
    ("schedule.peak=1e-2", "schedule.schedule.peak"),        # the default warmup + cosine
    ("schedule.floor=0.1", "schedule.schedule.floor"),
    ("schedule={name: scale, factor: 2, peak: 1, schedule: {name: cosine_decay, peak: 1, decay_steps: 10}}",
     "schedule.schedule.peak"),
    ("schedule={name: shift, shift: 5, max_lr: 1, schedule: {name: warmup, warmup_steps: 5, schedule: "
     "{name: one_cycle, max_lr: 1, total_steps: 100}}}", "schedule.schedule.schedule.max_lr"),
    ("schedule={name: sequence, boundaries: [10], value: 2, schedules: [{name: linear, init_value: 0, "
     "end_value: 1, transition_steps: 10}, {name: constant, value: 1}]}", "schedule.schedules[1].value"),
])
def test_a_key_of_a_wrapped_schedule_is_pointed_to_by_its_full_path(override, path):
    with pytest.raises(ConfigError, match=rf"did you mean '{re.escape(path)}'\?"):
        load_config(None, [override])
    fixed = override.replace(".peak=", ".schedule.peak=").replace(".floor=", ".schedule.floor=")
    if fixed != override:  # the path it names is the one that works
        assert load_config(None, [fixed]).schedule["schedule"][path.split(".")[-1]] in (0.01, 0.1)


def test_a_new_optimizer_drops_the_old_ones_arguments_with_a_note():
    with pytest.warns(DroppedArgumentsWarning, match=r"^--set optimizer.name=sgd: dropped "
                                                     r"optimizer.args.weight_decay=0.0001 \(an argument of adamw "
                                                     r"that optax.sgd does not take\)$"):
        cfg = load_config(None, ["optimizer.name=sgd"])
    assert cfg.optimizer.args == {}
    with pytest.warns(DroppedArgumentsWarning):  # what sgd does take stays
        cfg = load_config(None, ["optimizer.args.momentum=0.9", "optimizer.name=sgd"])
    assert cfg.optimizer.args == {"momentum": 0.9}
    assert load_config(None, ["optimizer.name=lion"]).optimizer.args == {"weight_decay": 1e-4}  # lion takes it
    # an argument written in the same command is the user's: kept, and the refusal says what to write
    with pytest.raises(ConfigError, match=r"optimizer.args.weight_decay: optax.sgd takes no argument 'weight_decay'; "
                                          r"its arguments are momentum, nesterov, accumulator_dtype. Remove it: "
                                          r"--set 'optimizer.args=\{momentum: 0.9\}'"):
        load_config(None, ["optimizer.name=sgd", "optimizer.args={weight_decay: 0.1, momentum: 0.9}"])


def test_a_config_file_naming_another_optimizer_without_args_gets_none_it_refuses(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optimizer: {name: sgd}\n")
    assert load_config(p).optimizer.args == {}
    p.write_text("optimizer: {name: sgd, args: {nesterov: true, b1: 0.9}}\n")
    with pytest.raises(ConfigError, match=r"optax.sgd takes no argument 'b1'"):
        load_config(p)


def test_train_counts_take_durations_resolved_with_the_data():
    cfg = load_config(None, ["train.steps=5 epochs", "train.eval_every=1 epoch", "train.log_every=10%",
                             "train.checkpoint_every=6400 examples", "data.batch_size=32",
                             "optimizer.accumulation_steps=2"])
    assert cfg.train.steps == "5 epochs" and config_from_dict(config_to_dict(cfg)) == cfg  # the text is kept
    per_epoch = 1000 // 64  # examples // (batch x accumulation)
    assert train_counts(cfg, num_examples=1000) == TrainCounts(5 * per_epoch, round(0.1 * 5 * per_epoch), per_epoch,
                                                               6400 // 64)
    assert train_steps(cfg, 1000) == 5 * per_epoch
    assert resolve_train(cfg, 1000).train.steps == 5 * per_epoch
    with pytest.raises(ConfigError, match=r"train.steps='5 epochs' counts epochs or examples of the training set"):
        train_steps(cfg)
    plain = load_config(None, ["train.steps=300", "train.eval_every=25%"])
    assert train_counts(plain) == TrainCounts(300, 20, 75, 200) and resolve_train(Config(), 10) == Config()
    with pytest.raises(ConfigError, match=r"train.steps='1 epoch': steps_per_epoch: num_examples=10 is smaller than "
                                          r"one optimizer update of 64 examples"):
        train_steps(load_config(None, ["train.steps=1 epoch"]), 10)
