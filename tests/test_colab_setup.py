"""The setup cell in (simulated) Google Colab: online, offline, a 404, a cut connection, files already there.

Each test runs the setup cell of an exercise notebook in a fresh directory that holds nothing else,
in a new Python process where `google.colab` is importable (as in Colab, and not in Jupyter) and
urllib's `urlopen` is replaced by a fake network that serves this repository's files.
"""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import course

ROOT = Path(__file__).resolve().parent.parent
EXERCISE = ROOT / "notebooks" / "01_atomic_backward.ipynb"

# The fake network. MODE: "online", "offline", "404" (FILE answers 404), "cut" (FILE's connection
# drops half-way). Every address asked for is appended to fetched.txt.
FAKE_COLAB = r'''
import http.client, io, sys, types, urllib.error, urllib.request, urllib.response
from email.message import Message
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab has, and Jupyter has not
ROOT, RAW_URL, NAMES_URL, MODE, FILE = %r

class CutResponse(io.BytesIO):
    def read(self, *args):
        raise http.client.IncompleteRead(b"half", 1000)

def fake_urlopen(url, data=None, timeout=None, **kwargs):
    url = getattr(url, "full_url", url)
    with open("fetched.txt", "a") as log:
        log.write(url + "\n")
    if MODE == "offline":
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
    if url == RAW_URL + FILE and MODE == "404":
        raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)
    if url == NAMES_URL:
        path = ROOT + "/data/names.txt"
    elif url.startswith(RAW_URL):
        path = ROOT + "/" + url[len(RAW_URL):]
    else:
        raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)
    body = open(path, "rb").read()
    headers = Message()
    headers["Content-Length"] = str(len(body))
    if url == RAW_URL + FILE and MODE == "cut":
        return urllib.response.addinfourl(CutResponse(body), headers, url, 200)
    return urllib.response.addinfourl(io.BytesIO(body), headers, url, 200)

urllib.request.urlopen = fake_urlopen
'''

# Runs the setup cell like a notebook cell; reports what it raised (if anything) as JSON.
DRIVER = r'''
import json, traceback
exec(open("fake_colab.py").read())
report = {"error": None}
try:
    exec(compile(open("setup_cell.py").read(), "<setup cell>", "exec"), {})
except BaseException as error:
    report = {"error": type(error).__name__, "message": str(error),
              "chained": error.__cause__ is not None or not error.__suppress_context__,
              "traceback": traceback.format_exc()}
else:
    if "--use" in __import__("sys").argv:
        from cmp import cmp
        import data
        report["words"] = len(data.load_words())
print(json.dumps(report))
'''


def setup_cell():
    """The setup cell exactly as a student gets it."""
    nb = nbformat.read(EXERCISE, as_version=4)
    return next(c.source for c in nb.cells if "setup" in c.metadata.get("tags", []))


def colab(work, mode="online", file="", use=False):
    """Run the setup cell in `work` (a stand-in for Colab's /content); returns (report, addresses fetched)."""
    from data import NAMES_URL
    work.mkdir(exist_ok=True)
    (work / "fake_colab.py").write_text(FAKE_COLAB % ((str(ROOT), course.RAW_URL, NAMES_URL, mode, file),))
    (work / "setup_cell.py").write_text(setup_cell())
    (work / "driver.py").write_text(DRIVER)
    (work / "fetched.txt").write_text("")
    result = subprocess.run([sys.executable, "driver.py"] + (["--use"] if use else []),
                            cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), (work / "fetched.txt").read_text().split()


def files_in(work):
    """Every file the setup cell left in `work`, besides the test's own."""
    ours = {"fake_colab.py", "setup_cell.py", "driver.py", "fetched.txt"}
    return sorted(str(p.relative_to(work)) for p in work.rglob("*")
                  if p.is_file() and p.name not in ours and "__pycache__" not in p.parts)


def helper_urls(files=course.HELPER_FILES):
    return [course.RAW_URL + f for f in files]


def test_helpers_come_from_a_fixed_release_not_a_branch():
    assert course.HELPERS_REF not in ("main", "master", course.BRANCH)
    assert course.RAW_URL.endswith(f"/{course.HELPERS_REF}/")
    assert f'"{course.RAW_URL}"' in setup_cell()


def test_online_it_downloads_each_helper_once_and_the_course_runs(tmp_path):
    from data import NAMES_URL
    report, fetched = colab(tmp_path, use=True)
    assert report == {"error": None, "words": 32033}
    assert fetched == helper_urls() + [NAMES_URL]
    assert files_in(tmp_path) == sorted(course.HELPER_FILES + ["data/names.txt"])
    for f in course.HELPER_FILES:
        assert (tmp_path / f).read_bytes() == (ROOT / f).read_bytes()

    report, fetched = colab(tmp_path, mode="offline")  # run again (Run All twice): nothing is fetched
    assert report == {"error": None}
    assert fetched == []


def assert_one_clear_error(report, url):
    assert report["error"] == "RuntimeError"
    assert not report["chained"], "one error, not 'during handling of the above exception, another...'"
    message = report["message"]
    assert url in message
    assert "online" in message and "run this cell again" in message
    assert "already downloaded are kept" in message


def test_offline_it_stops_with_one_message_naming_the_address(tmp_path):
    report, fetched = colab(tmp_path, mode="offline")
    assert_one_clear_error(report, course.RAW_URL + course.HELPER_FILES[0])
    assert "Temporary failure in name resolution" in report["message"]
    assert fetched == helper_urls()[:1], "it stops at the first failure"
    assert files_in(tmp_path) == [], "nothing half-written is left behind"


def test_a_404_names_the_missing_file_and_keeps_the_others_whole(tmp_path):
    missing = "data/names.py"
    report, fetched = colab(tmp_path, mode="404", file=missing)
    assert_one_clear_error(report, course.RAW_URL + missing)
    assert "404" in report["message"] and "instructor" in report["message"]
    assert files_in(tmp_path) == ["cmp.py", "data/__init__.py"]
    for f in ["cmp.py", "data/__init__.py"]:
        assert (tmp_path / f).read_bytes() == (ROOT / f).read_bytes()

    report, fetched = colab(tmp_path)  # back online: only the missing file is fetched
    assert report == {"error": None}
    assert fetched == [course.RAW_URL + missing]
    assert files_in(tmp_path) == sorted(course.HELPER_FILES)
    assert (tmp_path / missing).read_bytes() == (ROOT / missing).read_bytes()


def test_a_cut_connection_leaves_no_partial_file(tmp_path):
    report, _ = colab(tmp_path, mode="cut", file="cmp.py")
    assert_one_clear_error(report, course.RAW_URL + "cmp.py")
    assert "IncompleteRead" in report["message"]
    assert files_in(tmp_path) == []


def test_files_already_there_are_kept_and_nothing_is_fetched(tmp_path):
    for f in course.HELPER_FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes((ROOT / f).read_bytes() + b"\n# the student's own copy\n")
    report, fetched = colab(tmp_path, mode="offline")  # offline, and it does not matter
    assert report == {"error": None}
    assert fetched == []
    for f in course.HELPER_FILES:
        assert (tmp_path / f).read_bytes().endswith(b"# the student's own copy\n"), "never overwritten"


def test_run_all_stops_at_the_setup_cell_when_offline(tmp_path):
    """In a real kernel: the setup cell's error is the only error; no cell after it runs."""
    colab(tmp_path, mode="offline")  # writes fake_colab.py
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('exec(open("fake_colab.py").read())'),
        nbformat.v4.new_code_cell(setup_cell()),
        nbformat.v4.new_code_cell("from cmp import cmp"),
        nbformat.v4.new_code_cell("print('still running')"),
    ])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()  # stops at the first error, as Run All does
    errors = [(i, o) for i, c in enumerate(nb.cells) for o in c.outputs if o.output_type == "error"]
    assert [(i, o.ename) for i, o in errors] == [(1, "RuntimeError")]
    assert course.RAW_URL + "cmp.py" in errors[0][1].evalue
    assert nb.cells[2].execution_count is None and nb.cells[3].outputs == []


def test_locally_the_setup_cell_writes_nothing_and_uses_the_repository(tmp_path):
    work = tmp_path / "notebooks"
    work.mkdir()
    driver = (f"import os, sys\nbefore = set(os.listdir('.'))\nexec({setup_cell()!r})\n"
              "assert set(os.listdir('.')) == before, 'nothing downloaded or written'\n"
              "assert sys.path[0] == os.path.abspath('..')\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", driver], cwd=work, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
