"""Load names.txt (downloading it once if needed) and build the lecture's datasets.

`load_words()` gives the 32,033 names; `load_split()` gives the lecture's
(X, Y) tensors for train, dev and test. The file is always checked against
its sha256, so a missing or damaged file is reported, never used silently.
"""
import hashlib
import random
import urllib.request
from pathlib import Path

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
NAMES_PATH = Path(__file__).resolve().parent / "names.txt"
BLOCK_SIZE = 3  # context length: how many characters predict the next one


class DataError(RuntimeError):
    """names.txt is missing, incomplete or not the file the course expects."""


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def download(path=NAMES_PATH, url=NAMES_URL):
    """Download names.txt to `path`, keeping it only if its sha256 is right."""
    path = Path(path)
    partial = path.with_suffix(".part")
    try:
        urllib.request.urlretrieve(url, partial)
    except OSError as err:  # URLError, HTTPError and socket errors are all OSErrors
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{path.name} is not in {path.parent} and could not be downloaded from {url} ({err}).\n"
            f"Fix: connect to the internet and run again, or download that file yourself "
            f"and save it as {path}."
        ) from err
    if _sha256(partial) != NAMES_SHA256:
        partial.unlink()
        raise DataError(
            f"The file downloaded from {url} is not the expected names.txt (sha256 mismatch).\n"
            f"Fix: check the URL in data/names.py, or download the file yourself and save it as {path}."
        )
    partial.replace(path)


def ensure_names(path=NAMES_PATH, url=NAMES_URL):
    """Return the path of a verified names.txt, downloading it if it is missing."""
    path = Path(path)
    if not path.exists():
        download(path, url)
    digest = _sha256(path)
    if digest != NAMES_SHA256:
        raise DataError(
            f"{path} is not the expected names.txt: its sha256 is {digest}, "
            f"expected {NAMES_SHA256} (truncated or a different file?).\n"
            f"Fix: delete {path} and run again to download a fresh copy from {url}."
        )
    return path


def load_words(path=NAMES_PATH, url=NAMES_URL):
    """The 32,033 names of names.txt, in file order."""
    return ensure_names(path, url).read_text(encoding="utf-8").splitlines()


def vocabulary(words):
    """(stoi, itos): '.' is 0 and marks start and end of a name, 'a'..'z' are 1..26."""
    chars = sorted(set("".join(words)))
    stoi = {ch: i + 1 for i, ch in enumerate(chars)}
    stoi["."] = 0
    itos = {i: ch for ch, i in stoi.items()}
    return stoi, itos


def build_dataset(words, stoi, block_size=BLOCK_SIZE):
    """X: (N, block_size) contexts of character indices; Y: (N,) the character that follows."""
    import torch

    X, Y = [], []
    for word in words:
        context = [0] * block_size
        for ch in word + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


def load_split(path=NAMES_PATH, url=NAMES_URL):
    """The lecture's split: shuffle with random.seed(42), then 80% train, 10% dev, 10% test.

    Returns a dict with stoi, itos and (X, Y) tensors under 'train', 'dev' and 'test'.
    """
    words = load_words(path, url)
    stoi, itos = vocabulary(words)
    shuffled = list(words)
    random.Random(42).shuffle(shuffled)
    n1, n2 = int(0.8 * len(shuffled)), int(0.9 * len(shuffled))
    return {
        "stoi": stoi,
        "itos": itos,
        "train": build_dataset(shuffled[:n1], stoi),
        "dev": build_dataset(shuffled[n1:n2], stoi),
        "test": build_dataset(shuffled[n2:], stoi),
    }

