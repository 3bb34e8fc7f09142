"""The student's view, in a real browser: JupyterLab from the project's environment, driven by Chromium.

A student opens exercise 1, runs all cells, opens Hint 1 and then Hint 2 of the first gradient, and reads
the score table; then the same with the solution. Screenshots go to a temporary folder (printed with -s).
Needs the playwright package (tools/requirements.txt) and a Chromium: Debian's /usr/bin/chromium (.ci/run installs it)
or Playwright's own (`.venv/bin/python -m playwright install chromium`, as the GitHub workflow does).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
expect.set_options(timeout=180_000)  # running all of a notebook takes a while on 2 cores
CHROMIUM = "/usr/bin/chromium"
TOKEN = "backprop-ninja-browser-test"
# Chromium as this machine's closed network needs it: no background traffic, a fresh profile, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Render every cell (JupyterLab 4 otherwise renders only the cells on screen), and no autosave.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False,
                                                                     "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """The course as a student has it, in a temporary folder (running notebooks must not touch the repo)."""
    root = tmp_path_factory.mktemp("course")
    for folder in ("notebooks", "solutions"):
        (root / folder).mkdir()
        shutil.copy(ROOT / folder / "01_atomic_backward.ipynb", root / folder)
    shutil.copy(ROOT / "cmp.py", root)
    shutil.copytree(ROOT / "data", root / "data", ignore=shutil.ignore_patterns("__pycache__", "*.part"))
    settings = root / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return root


@pytest.fixture(scope="module")
def lab(course_copy):
    """A JupyterLab server on a free localhost port, stopped whatever happens."""
    port = free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={course_copy}",
               f"--LabApp.user_settings_dir={course_copy / 'lab-settings'}",
               f"--LabApp.workspaces_dir={course_copy / 'lab-workspaces'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(course_copy / "jupyter.log", "w")
    server = subprocess.Popen(command, cwd=course_copy, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start: " + (course_copy / "jupyter.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        own = Path(playwright.chromium.executable_path)
        if not Path(CHROMIUM).exists() and not own.exists():
            pytest.fail(f"no Chromium: apt-get install chromium (.ci/run does this), "
                        f"or .venv/bin/python -m playwright install chromium")
        executable = CHROMIUM if Path(CHROMIUM).exists() else own
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def run_all_cells(page, panel):
    """Run > Run All Cells. If JupyterLab first asks for a kernel, the command is lost: choose it again."""
    started = panel.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[(\*|\d+)\]"))
    for attempt in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            expect(started.first).to_be_visible(timeout=30_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def run_all_and_read_the_score(browser, lab, notebook, shots):
    """Open a notebook as a student would, Run All, open the first two hints; return the page."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    # JupyterLab may ask which kernel to use before it has started one: answer as a student would.
    page.add_locator_handler(page.get_by_text("Select Kernel", exact=True),
                             lambda: page.get_by_role("button", name="Select", exact=True).click())
    workspace = Path(notebook).parent.name  # a workspace of its own: only this notebook is open
    page.goto(f"{lab}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={TOKEN}")
    panel = page.locator(".jp-NotebookPanel")
    expect(panel).to_have_count(1)
    expect(panel.locator(".jp-Notebook")).to_be_visible()
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    page.screenshot(path=shots / f"{Path(notebook).parent.name}-opened.png")

    page.get_by_role("menuitem", name="Edit", exact=True).click()
    page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
    expect(panel.locator(".jp-OutputArea-output")).to_have_count(0)
    run_all_cells(page, panel)
    score = panel.locator(".jp-OutputArea-output").filter(has_text="of 26 correct")
    try:
        expect(score).to_have_count(1)
    finally:
        page.screenshot(path=shots / f"{Path(notebook).parent.name}-after-run-all.png")
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    score.scroll_into_view_if_needed()
    page.screenshot(path=shots / f"{Path(notebook).parent.name}-score.png")

    first_hint = panel.locator(".jp-RenderedMarkdown details").first
    first_hint.locator("> summary").click()
    second_hint = first_hint.locator("details").first
    second_hint.locator("> summary").click()
    first_hint.scroll_into_view_if_needed()
    page.screenshot(path=shots / f"{Path(notebook).parent.name}-hints.png")
    return page, score, first_hint, second_hint


def test_a_student_runs_exercise_1_and_opens_two_hints(browser, lab, tmp_path):
    page, score, first_hint, second_hint = run_all_and_read_the_score(
        browser, lab, "notebooks/01_atomic_backward.ipynb", tmp_path)
    print("screenshots:", tmp_path)
    assert first_hint.evaluate("e => e.open") and second_hint.evaluate("e => e.open")
    third_hint = second_hint.locator("details")
    assert third_hint.count() == 0 or not third_hint.first.evaluate("e => e.open")  # hint 3 stays closed
    expect(second_hint.locator("> summary")).to_have_text("Hint 2")
    expect(score).to_contain_text("0 of 26 correct")
    expect(score).to_contain_text("not done yet (26)")
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert page.locator(".jp-OutputArea-output:has-text('Traceback')").count() == 0
    page.close()


def test_the_solution_scores_26_of_26_in_the_browser(browser, lab, tmp_path):
    page, score, *_ = run_all_and_read_the_score(browser, lab, "solutions/01_atomic_backward.ipynb", tmp_path)
    print("screenshots:", tmp_path)
    expect(score).to_contain_text("26 of 26 correct")
    expect(score.locator("tr td:first-child").filter(has_text=re.compile(r"^ok$"))).to_have_count(26)
    assert page.locator(".jp-OutputArea-output:has-text('Traceback')").count() == 0
    page.close()
