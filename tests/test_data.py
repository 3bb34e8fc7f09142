"""The data loader: the right file, a clear message for every way of getting it wrong."""
import runpy
import subprocess
import sys
import urllib.error

import pytest

import data
from data import names

REAL_FILE = names.NAMES_PATH  # in CI, .ci/run copies it from ../shared


@pytest.fixture
def fake_download(monkeypatch):
    """Replace the network: urlretrieve 'downloads' whatever `served` holds (bytes or an exception)."""
    state = {"served": REAL_FILE.read_bytes(), "calls": []}

    def urlretrieve(url, filename):
        state["calls"].append(url)
        if isinstance(state["served"], Exception):
            raise state["served"]
        with open(filename, "wb") as f:
            f.write(state["served"])

    monkeypatch.setattr(names.urllib.request, "urlretrieve", urlretrieve)
    return state


def test_the_real_file_has_the_lecture_words():
    words = data.load_words()
    assert len(words) == 32_033
    assert words[:3] == ["emma", "olivia", "ava"]
    assert all(w and w.isalpha() and w.islower() for w in words)


def test_vocabulary_has_dot_at_zero_and_27_symbols():
    stoi, itos = data.vocabulary(data.load_words())
    assert len(stoi) == 27 and stoi["."] == 0 and stoi["a"] == 1 and stoi["z"] == 26
    assert all(itos[i] == ch for ch, i in stoi.items())


def test_split_matches_the_lecture():
    split = data.load_split()
    sizes = {part: tuple(split[part][0].shape) for part in ("train", "dev", "test")}
    assert sizes == {"train": (182_625, 3), "dev": (22_655, 3), "test": (22_866, 3)}
    for part in ("train", "dev", "test"):
        X, Y = split[part]
        assert Y.shape == (X.shape[0],) and int(X.max()) <= 26 and int(Y.max()) <= 26


def test_build_dataset_contexts():
    stoi, _ = data.vocabulary(["emma"])
    X, Y = data.build_dataset(["emma"], stoi)
    e, m, a = stoi["e"], stoi["m"], stoi["a"]
    assert X.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
    assert Y.tolist() == [e, m, m, a, 0]


def test_missing_file_is_downloaded_from_makemore(tmp_path, fake_download):
    path = tmp_path / "names.txt"
    words = data.load_words(path)
    assert len(words) == 32_033 and path.exists()
    assert fake_download["calls"] == [data.NAMES_URL]
    assert "karpathy/makemore" in data.NAMES_URL
    data.load_words(path)  # second time: no download
    assert len(fake_download["calls"]) == 1


def test_missing_file_without_network_says_how_to_fix(tmp_path, fake_download):
    fake_download["served"] = urllib.error.URLError("no route to host")
    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError) as err:
        data.load_words(path)
    message = str(err.value)
    assert "could not be downloaded" in message and str(path) in message and "Fix:" in message
    assert not path.exists() and not list(tmp_path.iterdir())


def test_download_of_a_wrong_file_is_rejected(tmp_path, fake_download):
    fake_download["served"] = b"<html>404: Not Found</html>"
    path = tmp_path / "names.txt"
    with pytest.raises(data.DataError, match="sha256 mismatch"):
        data.load_words(path)
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind


@pytest.mark.parametrize("damage", ["truncated", "different", "empty"])
def test_a_damaged_local_file_is_rejected(tmp_path, fake_download, damage):
    path = tmp_path / "names.txt"
    good = REAL_FILE.read_bytes()
    path.write_bytes({"truncated": good[: len(good) // 2], "different": good.upper(), "empty": b""}[damage])
    with pytest.raises(data.DataError) as err:
        data.load_words(path)
    message = str(err.value)
    assert "sha256" in message and f"delete {path}" in message
    assert fake_download["calls"] == []  # never silently replaced


def test_running_the_module_checks_the_data():
    """`python -m data` is how tools/run fetches and verifies the data."""
    result = subprocess.run([sys.executable, "-W", "error", "-m", "data"], cwd=REAL_FILE.parent.parent,
                            capture_output=True, text=True, check=True)
    assert "32,033 names, sha256 verified" in result.stdout


def test_running_the_module_explains_a_failure_without_a_traceback(monkeypatch, capsys):
    def no_network():
        raise data.DataError("names.txt could not be downloaded.\nFix: connect to the internet.")

    monkeypatch.setattr(names, "load_words", no_network)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("data", run_name="__main__")
    assert exit_.value.code == "Could not get the course data.\nnames.txt could not be downloaded.\nFix: connect to the internet."
