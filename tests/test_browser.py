"""The widgets in a real browser: JupyterLab in headless Chromium, driven by Playwright.

The other widget tests set control values from Python. This one checks the path a
student takes: JupyterLab renders the panels, a slider moved with the keyboard and a
toggle button clicked reach the kernel, and the redrawn image and text come back to
the page.

It skips when Playwright (the ``test`` extra) or a Chromium binary is missing. The
browser is the system's Chromium (Debian: ``apt-get install chromium``); set
``TPSEP_CHROMIUM`` to use another binary. Nothing is downloaded: do not run
``playwright install``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import nbformat
import pytest

# Generous: the machine may be busy, and the kernel imports torch and builds the
# panels on the default music data before anything shows.
TIMEOUT_S = 240
CHROMIUM_ARGS = [
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these Chromium opens connections of its own, which a closed network refuses
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOK = "widgets.ipynb"
SPECTROGRAM, MASK = ".browser-test-spectrogram", ".browser-test-mask"
# The panels' info lines (an ipywidgets HTML each): what the image shows, and MaskExplorer's scores.
SPECTROGRAM_INFO, MASK_INFO = f"{SPECTROGRAM} .widget-html-content", f"{MASK} .widget-html-content"
# The error outputs of the open notebook, from its model: "ename: evalue" each.
NOTEBOOK_ERRORS_JS = """() => {
    const errors = [];
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
        const outputs = cells.get(i).toJSON().outputs || [];
        for (const output of outputs) {
            if (output.output_type === "error") errors.push(`${output.ename}: ${output.evalue}`);
        }
    }
    return errors;
}"""

NOTEBOOK_CELLS = [
    """\
from tpsep import data
from tpsep.widgets import MaskExplorer, SpectrogramExplorer

track = data.load_dataset("music", split="test")[0]
rate = track.rate""",
    """\
spectrogram = SpectrogramExplorer(track.mixture[0, : 4 * rate], rate, title=track.name)
spectrogram.widget.add_class("browser-test-spectrogram")
spectrogram""",
    """\
clip = slice(4 * rate, 8 * rate)
mask = MaskExplorer(track.mixture[0, clip], track.stem("vocals")[0, clip], rate, kind="irm",
                    title=track.name)
mask.widget.add_class("browser-test-mask")
mask""",
]


def find_chromium() -> str | None:
    configured = os.environ.get("TPSEP_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(path))


def tail(path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def chromium_path():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set TPSEP_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def lab_server(chromium_path, tmp_path_factory):
    """JupyterLab on a free localhost port, in a temporary directory holding the notebook.

    Its config, data, runtime, settings and workspace directories are temporary too, so
    the user's own JupyterLab state plays no part, and nothing is fetched from the
    network: no news, no update check, no extension manager lookups on PyPI.
    """
    root = tmp_path_factory.mktemp("lab")
    notebooks, state = root / "notebooks", root / "state"
    notebooks.mkdir()
    write_notebook(notebooks / NOTEBOOK)
    env = dict(os.environ)
    for variable, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                             ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                             ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
        (state / folder).mkdir(parents=True)
        env[variable] = str(state / folder)
    env.pop("JUPYTER_PATH", None)
    # No "Would you like to get notified about official Jupyter news?" toast over the page.
    notification = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env.setdefault("TQDM_DISABLE", "1")
    port, token = free_port(), uuid.uuid4().hex
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run the notebook's commands
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=notebooks, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {server.returncode}; its log:\n{tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        json.load(response)
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {url} within {TIMEOUT_S} s; its log:\n{tail(log_path)}")
            time.sleep(0.5)
        yield {"url": url, "token": token, "log": log_path}
    finally:
        server.terminate()  # SIGTERM: the server shuts its kernels down and exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


@pytest.fixture
def page(chromium_path, lab_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(TIMEOUT_S * 1000)
            yield context.new_page()
        finally:
            browser.close()


@contextlib.contextmanager
def screenshot_on_failure(page, path, server_log):
    """Turn a failed wait or assertion into an AssertionError that says where the screenshot is."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        yield
    except (AssertionError, PlaywrightError) as error:
        try:
            page.screenshot(path=str(path), full_page=True)
            where = f"screenshot: {path}"
        except PlaywrightError as screenshot_error:
            where = f"no screenshot ({screenshot_error})"
        raise AssertionError(f"{error}\n{where}\nJupyterLab log: {server_log}") from error


def image_src(page, panel: str) -> str:
    """The ``src`` of the plot (the first image of the panel's outputs)."""
    return page.locator(f"{panel} .widget-output img").first.get_attribute("src")


def info_text(page, panel: str) -> str:
    return page.locator(f"{panel} .widget-html-content").first.inner_text()


def scores(info: str) -> tuple[float, float]:
    """(SI-SDR, SDR) from MaskExplorer's line "<setting> · SI-SDR 9.87 dB · SDR 10.12 dB · ..."."""
    found = re.search(r"SI-SDR (-?[\d.]+) dB · SDR (-?[\d.]+) dB", info)
    assert found, f"no scores in {info!r}"
    return float(found[1]), float(found[2])


def short(src: str) -> str:
    return f"<{len(src)} chars, sha1 {hashlib.sha1(src.encode()).hexdigest()[:12]}>"


def wait_for_new_image(page, panel: str, old: str, action: str) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            """([selector, old]) => {
                const image = document.querySelector(selector);
                return image !== null && image.src.startsWith("data:image/") && image.src !== old;
            }""",
            arg=[f"{panel} .widget-output img", old], timeout=TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"{panel}: the plot did not change after {action} "
                             f"within {TIMEOUT_S} s (still {short(old)})") from None
    new = image_src(page, panel)
    assert new != old and new.startswith("data:image/jpeg;base64,")
    return new


def wait_for_new_text(page, selector: str, old: str, action: str) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            """([selector, old]) => {
                const element = document.querySelector(selector);
                return element !== null && element.innerText.trim() !== old.trim();
            }""",
            arg=[selector, old], timeout=TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"{selector}: the text did not change after {action} within {TIMEOUT_S} s "
                             f"(still {old!r})") from None
    return page.locator(selector).first.inner_text()


def move_slider(page, panel: str, label: str) -> None:
    """One step right on the slider described by ``label``, with the keyboard on its handle."""
    handle = page.locator(f"{panel} .widget-slider", has_text=label).locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")


def readout(page, panel: str, label: str) -> str:
    return page.locator(f"{panel} .widget-slider", has_text=label).locator(".widget-readout").inner_text()


def click_toggle(page, panel: str, option: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    button = page.locator(f"{panel} .widget-toggle-button", has_text=option)
    button.click()
    try:
        page.wait_for_function("(button) => button.classList.contains('mod-active')",
                               arg=button.element_handle(), timeout=TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        raise AssertionError(f"{panel}: the toggle button {option!r} did not become active") from None


def open_and_run_notebook(page, lab_server) -> None:
    page.goto(f"{lab_server['url']}/lab/tree/{NOTEBOOK}?reset&token={lab_server['token']}")
    # The notebook is open and its kernel is started and idle: only then are cells run.
    page.wait_for_function(
        """(name) => {
            const app = window.jupyterapp;
            const panel = app && app.shell && app.shell.currentWidget;
            if (!panel || !panel.context || panel.context.path !== name || !panel.sessionContext) return false;
            const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
            return Boolean(kernel) && kernel.status === "idle";
        }""",
        arg=NOTEBOOK, timeout=TIMEOUT_S * 1000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # Both panels drawn, or a cell failed (then say so at once rather than wait out the timeout).
    page.wait_for_function(
        f"""(panels) => ({NOTEBOOK_ERRORS_JS})().length > 0 || panels.every(
            (panel) => document.querySelector(`${{panel}} .widget-output img`) !== null
                && document.querySelector(`${{panel}} .widget-html-content`) !== null)""",
        arg=[SPECTROGRAM, MASK], timeout=TIMEOUT_S * 1000)
    errors = page.evaluate(NOTEBOOK_ERRORS_JS)
    assert not errors, "a notebook cell failed:\n" + "\n".join(errors)
    for panel in (SPECTROGRAM, MASK):
        page.locator(f"{panel} .widget-output img").first.wait_for(state="visible")


def test_sliders_and_toggles_redraw_in_jupyterlab(page, lab_server, tmp_path):
    screenshot = tmp_path / "jupyterlab.png"
    with screenshot_on_failure(page, screenshot, lab_server["log"]):
        open_and_run_notebook(page, lab_server)

        # SpectrogramExplorer: the dB-range slider redraws the image; the frequency-axis
        # toggle redraws it and rewrites the info line.
        image, info = image_src(page, SPECTROGRAM), info_text(page, SPECTROGRAM)
        assert readout(page, SPECTROGRAM, "dB range") == "80"
        assert "bins" in info and "mel" not in info
        move_slider(page, SPECTROGRAM, "dB range")
        image = wait_for_new_image(page, SPECTROGRAM, image, "moving the dB-range slider")
        assert readout(page, SPECTROGRAM, "dB range") == "90"
        click_toggle(page, SPECTROGRAM, "mel")
        image = wait_for_new_image(page, SPECTROGRAM, image, "clicking 'mel'")
        new_info = wait_for_new_text(page, SPECTROGRAM_INFO, info, "clicking 'mel'")
        assert "mel bands" in new_info

        # MaskExplorer: the IRM exponent slider and the IBM toggle each redraw the mask
        # and change the setting and the scores in the score line.
        image, info = image_src(page, MASK), info_text(page, MASK)
        assert info.startswith("IRM, p = 1 ·")
        move_slider(page, MASK, "IRM exponent p")
        image = wait_for_new_image(page, MASK, image, "moving the IRM exponent slider")
        new_info = wait_for_new_text(page, MASK_INFO, info, "moving the IRM exponent slider")
        assert readout(page, MASK, "IRM exponent p") == "1.25"
        assert new_info.startswith("IRM, p = 1.25 ·")
        assert scores(new_info) != scores(info), (info, new_info)
        info = new_info
        click_toggle(page, MASK, "binary (IBM)")
        wait_for_new_image(page, MASK, image, "clicking 'binary (IBM)'")
        new_info = wait_for_new_text(page, MASK_INFO, info, "clicking 'binary (IBM)'")
        assert new_info.startswith("IBM, threshold +0 dB ·")
        assert scores(new_info) != scores(info), (info, new_info)
