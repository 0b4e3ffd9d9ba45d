"""The MLflow UI in a real browser: a small sweep run as a user runs it, ``mlflow ui`` started on
127.0.0.1 against its store, the link ``harness`` printed opened in headless Chromium (Debian's
``chromium``, driven by playwright with that executable: no browser is downloaded). Screenshots go to
``$HARNESS_UI_SHOTS`` (default ``ui-screenshots/`` in the checkout), which CI keeps.

Without playwright or a Chromium these tests skip with the reason; under HARNESS_REQUIRE_SERVICES=1
(CI) they fail instead."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from harness.story import KEY_METRICS
from tests.conftest import children_of

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("HARNESS_UI_SHOTS", ROOT / "ui-screenshots"))
SWEEP = ["-m", "debug=default", "gradcheck=off", "tracking.figures=true", "study=ui", "model.width=32",
         "init.repeats=4", "model.depth=5,20", "model.activation=relu,tanh",
         "model.skip=false,true"]  # fmt: skip
TABLE_CELL = ".ag-row .ag-cell[col-id='{}']"


def _unavailable(reason: str) -> None:
    if os.environ.get("HARNESS_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable('needs playwright: pip install -e ".[test]"')
    found = os.environ.get("HARNESS_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        _unavailable("needs a Chromium: apt-get install chromium (or set HARNESS_TEST_CHROMIUM)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The sweep's store, its printed lines, and ``mlflow ui`` answering on a free loopback port."""
    executable = chromium()
    cwd = tmp_path_factory.mktemp("ui")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    environ |= {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    out = subprocess.run([sys.executable, "-m", "harness", *SWEEP], cwd=cwd, env=environ, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    uri = f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}"
    port = free_port()
    log = open(cwd / "mlflow-ui.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, (cwd / "mlflow-ui.log").read_text()
            assert time.monotonic() < deadline, "mlflow ui did not answer in 180 s"
            time.sleep(0.5)
        yield {"executable": executable, "base": base, "stderr": out.stderr, "client": MlflowClient(uri)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=ui["executable"], args=["--no-sandbox"])
        yield b
        b.close()


def printed(stderr: str, start: str, base: str) -> str:
    """The link on the line that starts with ``start``, pointed at this test's UI."""
    (line,) = [line for line in stderr.splitlines() if line.startswith(start)]
    return line.split()[-1].replace("http://127.0.0.1:5000", base)


def expect(locator):  # playwright's retrying assertions
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def page_of(browser, url: str):
    page = browser.new_page(viewport={"width": 2100, "height": 950})
    page.goto(url)
    return page


def close_assistant(page) -> None:
    """MLflow's assistant panel takes a third of the page."""
    button = page.locator("button[aria-label='Close']")
    if button.count():
        button.first.click()


def screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def cells(page, column: str) -> list[tuple[int, str, bool]]:
    """(row index, text, whether the text fits its cell) of a runs-table column, in the table's order
    (a name cell's text is its link: the colour chip beside it is left out)."""
    found = page.eval_on_selector_all(
        TABLE_CELL.format(column),
        """els => els.map(e => { const t = e.querySelector('a') || e;
            return [Number(e.closest('.ag-row').getAttribute('row-index')), t.innerText.trim(),
                    t.getBoundingClientRect().right <= e.getBoundingClientRect().right + 1]; })""",
    )
    return sorted((int(i), text, fits) for i, text, fits in found)


def children(ui) -> list:
    c = ui["client"]
    exp = c.get_experiment_by_name("ui")
    return children_of(c.search_runs([exp.experiment_id]))


def test_the_printed_link_opens_the_runs_table_with_readable_names_and_key_columns(ui, browser):
    link = printed(ui["stderr"], "runs table (sorted by grad_h_ratio_log10): ", ui["base"])
    page = page_of(browser, link)
    name = "attributes.`Run Name`"
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length >= n",
        arg=[TABLE_CELL.format(name), 8],
        timeout=90_000,
    )
    close_assistant(page)
    assert "/runs" in page.url and "overview" not in page.url  # the runs table, not the GenAI overview
    kids = {r.info.run_name: r for r in children(ui)}
    names = cells(page, name)
    assert sorted(text for _, text, _ in names) == sorted(kids) and len(kids) == 8
    assert all(fits for _, _, fits in names), f"a name is cut: {names}"
    wanted = {f"metrics.`{k}`" for k in KEY_METRICS} | {"attributes.`Description`"}
    wanted |= {f"params.`model.{k}`" for k in ("depth", "activation", "skip")}
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    script = "els => els.map(e => e.getAttribute('col-id'))"
    with contextlib.suppress(PlaywrightTimeout):  # the grid renders its headers a few at a time
        page.wait_for_function(
            f"w => {{ const h = new Set(({script})"
            "([...document.querySelectorAll('.ag-header-cell[col-id]')])); return w.every(c => h.has(c)); }",
            arg=sorted(wanted), timeout=30_000,
        )  # fmt: skip
    headers = set(page.eval_on_selector_all(".ag-header-cell[col-id]", script))
    assert wanted <= headers, f"missing columns: {wanted - headers}"
    # sorted by the key metric, most vanishing first; each row's description is its verdict
    order = [text for _, text, _ in names]
    ratios = [kids[n].data.metrics["grad_h_ratio_log10"] for n in order]
    assert ratios == sorted(ratios)
    for (_, text, fits), n in zip(cells(page, "attributes.`Description`"), order, strict=True):
        note = kids[n].data.tags["mlflow.note.content"]
        assert text.removesuffix("...") == note[: len(text.removesuffix("..."))] and len(text) >= 40 and fits
    screenshot(page, "runs_table.png")
    page.close()


def test_a_runs_charts_show_the_log10_profiles(ui, browser):
    run = min(children(ui), key=lambda r: r.data.metrics["grad_h_ratio_log10"])
    page = page_of(browser, f"{ui['base']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/"
                            "model-metrics?workflowType=machine_learning")  # fmt: skip
    search = page.get_by_placeholder("Search metric charts")
    search.wait_for(timeout=90_000)
    close_assistant(page)
    page.set_viewport_size({"width": 2100, "height": 1500})  # charts below the fold are not drawn
    search.fill("log10_")  # as the README says: the straight-line profiles, theory beside them
    for title in ("log10_grad_h", "log10_theory_grad_h", "log10_grad_W"):
        page.get_by_text(title, exact=True).first.wait_for(timeout=30_000)
    expect(page.get_by_text("act_mean", exact=True)).to_have_count(0)  # the search keeps only log10 charts
    page.wait_for_timeout(1500)  # the lines draw after the titles
    screenshot(page, "run_charts.png")
    page.close()


def test_the_parents_artifacts_show_the_sweeps_figures(ui, browser):
    link = printed(ui["stderr"], "the sweep's figures and CSV: ", ui["base"])
    page = page_of(browser, link)
    page.get_by_text("sweep", exact=True).first.click(timeout=90_000)
    close_assistant(page)
    for name in ("summary.csv", "rate_by_factor.png"):
        page.get_by_text(name, exact=True).first.wait_for()
    page.get_by_text("profiles.png", exact=True).first.click()
    image = page.locator("img[src^='blob:']").first
    image.wait_for(timeout=30_000)
    assert image.evaluate("e => e.naturalWidth") > 500  # the figure itself, drawn
    screenshot(page, "parent_figures.png")
    page.close()
