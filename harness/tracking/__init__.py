"""Everything MLflow: the only package that imports it (lazily, so that validating a config or printing
help does not pay ~1.5 s for it). ``store`` checks and opens the store, ``runs`` writes a run (batched,
with a heartbeat) and finds lost ones, ``queries`` reads runs back and builds the UI's links; the rest
of the harness uses them as ``harness.tracking.<name>``.

Runs are created with ``MlflowClient.create_run`` and an explicit experiment id; a child names its
parent with the ``mlflow.parentRunId`` tag. No fluent ``mlflow.start_run`` state is used, so runs
cannot land in the wrong experiment or reopen the parent, whichever process or launcher starts them.

Every run carries its liveness: ``harness.host``, ``harness.pid`` (+ ``harness.pid_start``) and a
heartbeat tag ``harness.heartbeat`` rewritten every ``harness.heartbeat_s`` seconds by a thread. A
RUNNING run whose process is gone (same host) or whose heartbeat is stale (any host) is lost:
``mark_lost`` ends it FAILED with a ``harness.lost`` tag. Writes run inside ``processes.deferred()``,
so a signal never cuts one in half.
"""

from harness.tracking.queries import (  # noqa: F401
    ML_VIEW,
    UI,
    VIEW_TAG,
    children,
    column,
    finished_child,
    finished_runs_by_hash,
    get_run,
    load_arrays,
    log_file,
    metric_series,
    metrics_of,
    run_link,
    run_with_tags,
    runs_view,
    sweeps,
    ui_base,
    ui_hint,
    ui_start,
)
from harness.tracking.runs import (  # noqa: F401
    Run,
    liveness_tags,
    lost_reason,
    mark_lost,
    reopen,
)
from harness.tracking.store import (  # noqa: F401
    GIT_COMMIT_TAG,
    HEARTBEAT_SECONDS,
    KIND,
    LOST_AFTER,
    MIN_FREE_MB,
    MLRUNS,
    NOTE,
    OutOfSpace,
    StoreError,
    check_store,
    client,
    default_artifact_location,
    first_line,
    out_of_space,
    prepare,
    resolve_uri,
    sqlite_path,
    store_lock,
)
