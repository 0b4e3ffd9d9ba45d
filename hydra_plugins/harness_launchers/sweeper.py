"""Hydra's basic sweeper, without composing every job a second time when ``harness`` already has.

Before it launches a batch, the basic sweeper composes every job's config in the launching process, one
after another, to catch composition errors early (``validate_batch_is_legal``): about 0.1 s a job, 5 s
before the first job of a 54-job sweep could start. ``harness``'s pre-flight (``harness.preflight``)
has composed and validated every one of those jobs before Hydra started, and says so in the ``Launch``
it hands over (``validated``); this sweeper then skips Hydra's second pass. Launched in any other way,
or for a sweep of more than ``preflight.MAX_COMBINATIONS`` jobs (where the pre-flight checks each value
on its own), Hydra's own validation runs as before. Everything else is the basic sweeper's
(``hydra.sweeper.params``, ``max_batch_size``).

A full disk (under the store, or under the sweep's folders where Hydra writes each job's ``.hydra/``)
stops the sweep in one line: every further job would fail the same way. The harness then ends the
parent if the store still takes a write; the next launch, once there is space, marks what was left
RUNNING as FAILED, and ``resume=true`` runs the unfinished jobs.
"""

# no ``from __future__ import annotations``: Hydra executes plugin modules outside sys.modules, where a
# dataclass cannot resolve string annotations
from collections.abc import Sequence
from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore

from harness import processes, tracking
from harness.callbacks import Launch


@dataclass
class HarnessSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.harness_launchers.sweeper.HarnessSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="harness", node=HarnessSweeperConf, provider="harness"
)


class HarnessSweeper(BasicSweeper):
    """The basic sweeper; a batch whose jobs the pre-flight validated is not composed again."""

    def sweep(self, arguments: list[str]) -> object:
        try:
            return super().sweep(arguments)
        except (Exception, tracking.OutOfSpace) as err:
            if not tracking.out_of_space(err):
                raise
            line = str(err) if isinstance(err, tracking.OutOfSpace) else tracking.first_line(err)
            processes.say(f"harness: out of disk space ({line}): the sweep stops, no further job starts")
            raise SystemExit(1) from None

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        launch = Launch.from_env()
        if launch is not None and launch.validated:
            return
        super().validate_batch_is_legal(batch)
