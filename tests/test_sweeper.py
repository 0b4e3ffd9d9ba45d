"""The harness sweeper (``hydra_plugins/harness_launchers/sweeper.py``): Hydra's basic sweeper, which
skips Hydra's second composition of every job only when ``harness``'s pre-flight composed every one."""

from dataclasses import asdict

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.types import HydraContext

from harness.app import _plan
from harness.callbacks import LAUNCH_ENV, Launch, encode
from harness.preflight import CONF_DIR, MAX_COMBINATIONS
from hydra_plugins.harness_launchers import sweeper as plugin

BAD_JOB = [["optim=rmsprop"]]  # a batch whose one job Hydra cannot compose


def test_hydra_validates_a_batch_unless_the_preflight_composed_every_job(monkeypatch):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        config = compose("config", return_hydra_config=True)
        assert config.hydra.sweeper._target_.endswith("sweeper.HarnessSweeper")  # conf/config.yaml's choice
        # the class as Hydra's plugin scan left it (the scan executes plugin modules again, in place)
        sweeper = plugin.HarnessSweeper(max_batch_size=None)
        sweeper.config = config
        sweeper.hydra_context = HydraContext(
            config_loader=GlobalHydra.instance().config_loader(), callbacks=None
        )
        monkeypatch.delenv(LAUNCH_ENV, raising=False)  # launched without harness's main: Hydra's check
        with pytest.raises(HydraException, match="rmsprop"):
            sweeper.validate_batch_is_legal(BAD_JOB)
        for validated in (False, True):
            monkeypatch.setenv(
                LAUNCH_ENV, encode(asdict(Launch("sqlite:///x", "e", "1", 2, validated=validated)))
            )
            if validated:
                sweeper.validate_batch_is_legal(BAD_JOB)  # not composed a second time
            else:
                with pytest.raises(HydraException, match="rmsprop"):
                    sweeper.validate_batch_is_legal(BAD_JOB)


def test_the_launch_says_validated_only_when_every_combination_was_composed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    few = _plan(["-m", "model.depth=3,5", "model.skip=false,true", "debug=default"], multirun=True)
    assert few.jobs == 4 and few.validated
    widths = ",".join(
        str(w) for w in range(2, MAX_COMBINATIONS + 3)
    )  # one job more than the preflight composes
    many = _plan(["-m", f"model.width={widths}", "debug=default"], multirun=True)
    assert many.jobs == MAX_COMBINATIONS + 1 and not many.validated
