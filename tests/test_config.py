"""Every shipped config composes with Hydra's compose API and validates; bad values are named."""

import contextlib
import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.config import ConfigError, StudyConfig, config_hash, parse_config
from harness.preflight import CONF_DIR, group_options, validate_command

GROUPS = [
    "model",
    "data",
    "loss",
    "optim",
    "train",
    "gradcheck",
    "tracking",
    "launcher",
    "debug",
    "experiment",
]


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _needs(group, option):
    """Options that only make sense with a matching loss, mode or file."""
    extra = {
        ("data", "teacher_student"): ["loss=mse"],
        ("data", "spirals"): ["loss=cross_entropy"],
        ("data", "blobs"): ["loss=cross_entropy"],
        ("data", "digits"): ["loss=cross_entropy"],
        ("data", "file"): ["loss=mse", f"data.path={Path(__file__).resolve().parent / 'data' / 'tiny.csv'}"],
        ("loss", "mse"): ["data=teacher_student"],
        ("loss", "cross_entropy"): ["data=spirals"],
        ("tracking", "server"): ["tracking.uri=http://127.0.0.1:5000"],
    }
    return extra.get((group, option), [])


def test_every_group_has_options():
    for group in GROUPS:
        assert group_options(group), group


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)], ids=lambda v: str(v)
)
def test_every_shipped_config_composes_and_validates(group, option):
    if group == "launcher":  # a launcher's config needs its Hydra plugin (an extra)
        from harness.preflight import LAUNCHER_PLUGINS

        module, extra = LAUNCHER_PLUGINS.get(option, (None, None))
        if module:
            pytest.importorskip(module, reason=f'launcher={option} needs pip install -e ".[{extra}]"')
    values = _compose([f"{group}={option}", *_needs(group, option)])
    config = parse_config(values)
    assert isinstance(config, StudyConfig)
    chosen = {"data": config.data.name, "loss": config.loss.name, "optim": config.optim.name,
              "gradcheck": config.gradcheck.mode}  # fmt: skip
    if group in chosen:
        assert chosen[group] == option  # the option is the one composed


def test_the_server_preset_needs_its_address():
    with pytest.raises(ConfigError, match=r"^tracking.uri: missing; .*tracking.uri=http://HOST:PORT"):
        parse_config(_compose(["tracking=server"]))


def test_default_config_is_the_documented_study():
    config = parse_config(_compose([]))
    assert (config.mode, config.model.depth, config.model.activation, config.loss.name) == (
        "init", 20, "tanh", "probe",
    )  # fmt: skip


def test_experiments_sweep_what_they_say():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=vanishing_sweep"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert set(params) == {"model.depth", "model.activation", "model.init_scale", "model.skip"}
    assert validate_command(["experiment=vanishing_sweep"])[0] == 2 * 3 * 3 * 2


def test_command_validation_counts_jobs_and_names_bad_keys():
    assert validate_command(["-m", "model.depth=3,5", "model.skip=false,true", "debug=default"])[0] == 4
    with pytest.raises(ConfigError, match=r"^model\.width: got -4; allowed: an integer > 0$"):
        validate_command(["-m", "model.width=8,-4"])
    with pytest.raises(ConfigError, match=r"^model\.depht: unknown key; allowed keys: model\.depth"):
        validate_command(["model.depht=3"])
    with pytest.raises(ConfigError, match=r"^bogus: unknown key; allowed keys: study, mode, seed"):
        validate_command(["+bogus=1"])
    with pytest.raises(ConfigError, match=r"^optim: unknown option 'rmsprop'; allowed: adam, momentum, sgd$"):
        validate_command(["optim=rmsprop"])


def test_config_hash_ignores_tracking_and_the_study_label():
    a = parse_config(_compose([]))
    b = parse_config(_compose(["tracking.max_layers=4", "tracking.figures=false"]))
    c = parse_config(_compose(["model.depth=5"]))
    d = parse_config(_compose(["study=another_label"]))
    e = parse_config(_compose(["resume=true", "tracking.flush_seconds=0.5"]))
    assert config_hash(a) == config_hash(b) == config_hash(d) == config_hash(e) != config_hash(c)


def test_input_scale_is_hashed_only_when_set():
    """data.input_scale came after runs were recorded: at 1 a config hashes as it did without the key
    (the default study hashed 6036a2553b3f2616 before the key existed), so a store's runs are still found."""
    assert config_hash(parse_config(_compose([]))) == "6036a2553b3f2616"
    scaled = parse_config(_compose(["data.input_scale=2"]))
    assert config_hash(scaled) != "6036a2553b3f2616"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.input_scale=0", r"^data.input_scale: got 0.0; allowed: a finite number > 0$"),
        ("data.input_scale=qstar", r"^data.input_scale: got 'qstar'; allowed: a number > 0, or 'q_star'$"),
        (
            "data.input_scale=q_star",
            r"^data.input_scale: 'q_star' needs a fixed point 0 < q\* < inf .* q\* = 0 for tanh",
        ),
    ],
)
def test_bad_input_scales_get_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_compose([override]))


def test_widths_repeat_to_depth_and_are_hashed_only_when_set():
    """model.widths=[16,64] alternates the hidden widths (repeated and cut to model.depth); unset, the
    config hashes as before the key existed; a bad value is one line."""
    c = parse_config(_compose(["model.widths=[16,64]", "model.depth=5"]))
    assert c.hidden_widths == [16, 64, 16, 64, 16]
    assert c.network_spec(input_dim=3, output_dim=2, seed=0).widths == [16, 64, 16, 64, 16]
    assert parse_config(_compose(["model.depth=5"])).hidden_widths == [128] * 5
    assert config_hash(parse_config(_compose(["model.widths=null"]))) == "6036a2553b3f2616"
    assert config_hash(c) != config_hash(parse_config(_compose(["model.widths=[16,64,16]", "model.depth=5"])))
    for bad in ("[]", "[16,0]", "[16,true]", "16"):
        with pytest.raises(ConfigError, match=r"^model.widths: got .*; allowed: a "):
            parse_config(_compose([f"model.widths={bad}"]))


def test_resume_takes_true_false_or_a_run_id():
    assert parse_config(_compose([])).resume is False
    assert parse_config(_compose(["resume=true"])).resume is True
    assert parse_config(_compose(["resume=0a1b2c3d4e5f"])).resume == "0a1b2c3d4e5f"
    with pytest.raises(ConfigError, match="resume: got 12; allowed: true or false or a string"):
        parse_config(_compose(["resume=12"]))
    message = "tracking.heartbeat_seconds: got 0.0; allowed: a finite number > 0"
    with pytest.raises(ConfigError, match=message):
        parse_config(_compose(["tracking.heartbeat_seconds=0"]))


@pytest.mark.parametrize(
    ("sweep", "parsed"),
    [
        (["model.depth=3,5", "model.skip=false,true", "model.skip_scale=1,'1/sqrt(depth)'", "seed=0,7"], 16),
        (["mode=train", "loss=cross_entropy", "data=spirals,blobs", "optim=sgd,adam", "train.steps=5,9"], 8),
        (["model.activation=tanh,relu", "mode=init,train"], 2),  # the second job is a bad combination
        (["data=gaussian,blobs", "model.init_scale=0.5,2", "model.norm=none,layer"], 8),
    ],
)
def test_sweep_validation_parses_every_job_as_hydra_composes_it(sweep, parsed, monkeypatch):
    """The preflight composes each choice of groups once and sets swept values into a copy; each
    job's parsed config must equal what a full Hydra compose of that job gives."""
    import harness.preflight as preflight

    seen = []
    monkeypatch.setattr(preflight, "parse_config", lambda values: seen.append(values) or parse_config(values))
    with contextlib.suppress(ConfigError):  # mode=train with the probe loss: parsed up to the bad job
        validate_command(["-m", *sweep])
    keys = [s.split("=")[0] for s in sweep]
    combos = itertools.product(
        *[s.split("=")[1].split(",") for s in sweep]
    )  # the sweeps above: no quoted ","
    # every job up to the first bad one (all of them when none is bad), in product order
    assert len(seen) == parsed
    for values, combo in zip(seen, combos, strict=False):  # product order, as the preflight walks it
        assert values == _compose([f"{k}={v}" for k, v in zip(keys, combo, strict=True)])


def test_sweep_validation_catches_a_bad_combination():
    with pytest.raises(ConfigError, match=r"^loss\.name: 'probe' is for mode=init"):
        validate_command(["-m", "mode=init,train", "model.depth=3,5"])


def test_a_swept_mapping_is_merged_as_hydra_merges_it():
    # init={repeats:2} keeps init.batch_size=1 from the command line, which BatchNorm rejects
    with pytest.raises(ConfigError, match=r"batch"):
        validate_command(["-m", "init.batch_size=1", "model.norm=batch", "init={repeats:2},{repeats:4}"])
