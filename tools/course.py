"""The one place for what every notebook shares: where the course lives, its setup cell, its model.

tools/make_exercises.py stamps these into the notebooks (solutions and exercises); run it after
changing anything here:
- the Colab badge (cell tagged `badge`) and the setup cell (tagged `setup`) from GITHUB_REPO,
  BRANCH and HELPERS_REF;
- the parameter cell (tagged `parameters`) from parameters_source(), with `n_hidden` the one
  difference between notebooks (N_HIDDEN). C..b2 come from `g` in the lecture's order and `g` is
  then left for the batches, so the batches are the lecture's; bngain/bnbias, which the lecture
  draws unseeded from the global generator, come from a seeded generator of their own (BN_SEED).

Helpers in Colab come from a fixed release, never from a branch: a notebook fetches cmp.py and
data/ at HELPERS_REF, so a copy saved months ago keeps getting the helpers it was written for.
The instructor's part: the tag (or commit) named by HELPERS_REF must exist on GitHub, so after
changing the helpers in a way the notebooks depend on, set a new HELPERS_REF (e.g. "v2"), run
tools/make_exercises.py, commit, then `git tag v2 && git push origin v2`. Until that tag is
pushed, the setup cell in Colab stops with "HTTP Error 404" and the address it tried.
"""

GITHUB_REPO = "backprop-ninja/backprop-ninja"  # owner/name on GitHub
BRANCH = "main"  # where the Colab badges open the notebooks
HELPERS_REF = "v1"  # the tag (or commit) Colab downloads the helpers from: push it before students use it

RAW_URL = f"https://raw.githubusercontent.com/{GITHUB_REPO}/{HELPERS_REF}/"
COLAB_URL = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

# The files a notebook imports from the repository; Colab downloads them.
HELPER_FILES = ["cmp.py", "data/__init__.py", "data/names.py"]

# Neurons in the hidden layer: the lecture's 64 for the gradient exercises, 200 for training (04).
N_HIDDEN = {"01": 64, "02": 64, "03": 64, "04": 200}


def badge_markdown(notebook_path):
    """Markdown for an 'Open in Colab' badge; notebook_path is relative to the repository root."""
    return f"[![Open In Colab]({COLAB_BADGE})]({COLAB_URL}{notebook_path})"


def setup_source():
    """The first code cell of every notebook: it makes `cmp` and `data` importable.

    In Colab it downloads each helper that is not there yet. A file is written under a temporary
    name and renamed once complete, so a helper is either whole or absent, and running the cell
    again only fetches what is missing. Any failure stops the cell (and so Run All) with one
    error naming the address and what to do.
    """
    files = ", ".join(f'"{f}"' for f in HELPER_FILES)
    return f'''# @title Setup: run it (it makes `cmp` and `data` importable; in Colab it downloads them)
# In Google Colab: download the course's helpers from release {HELPERS_REF}, each file once.
# Locally: use this repository's copies.
import os, sys
if "google.colab" in sys.modules:
    import urllib.request
    course_url = "{RAW_URL}"
    for path in [{files}]:
        if os.path.exists(path):  # downloaded before: a file only appears here once complete
            continue
        try:
            content = urllib.request.urlopen(course_url + path, timeout=60).read()
        except Exception as error:  # offline, address not found, connection cut
            raise RuntimeError(f"Could not download {{course_url + path}}: {{error}}\\n"
                               "Check that this runtime is online, then run this cell again "
                               "(files already downloaded are kept). On 404, tell your instructor.") from None
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path + ".part", "wb") as file:
            file.write(content)
        os.replace(path + ".part", path)
else:
    sys.path.insert(0, os.path.abspath(".."))'''


def n_hidden(notebook_name):
    """Hidden-layer size of a notebook, from its number: '04_training....ipynb' -> 200."""
    number = notebook_name[:2]
    if number not in N_HIDDEN:
        raise KeyError(f"{notebook_name} has a cell tagged 'parameters' but no entry in N_HIDDEN (tools/course.py)")
    return N_HIDDEN[number]


# The seed of bngain/bnbias's own generator: the lecture's other seed (its split uses random.seed(42)).
# Not chosen for its loss: first losses of the lecture's batch over bngain/bnbias draws are 3.31-3.35.
BN_SEED = 42


def parameters_source(n_hidden):
    """The cell that makes the lecture's parameters (tagged `parameters`): the same in every notebook but n_hidden."""
    return f'''n_embd = 10        # size of each character's embedding vector
{f"n_hidden = {n_hidden}":<19}# neurons in the hidden layer
vocab_size = 27    # '.' and 'a'..'z'
block_size = 3     # characters of context
g = torch.Generator().manual_seed(2147483647)
C = torch.randn((vocab_size, n_embd), generator=g)
W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3) / (n_embd * block_size)**0.5
b1 = torch.randn(n_hidden, generator=g) * 0.1  # useless before BatchNorm: here to check its gradient
W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
b2 = torch.randn(vocab_size, generator=g) * 0.1
# bngain, bnbias: from a seeded generator of their own (the lecture's are unseeded); g's draws stay the video's
g_bn = torch.Generator().manual_seed({BN_SEED})
bngain = torch.randn((1, n_hidden), generator=g_bn) * 0.1 + 1.0
bnbias = torch.randn((1, n_hidden), generator=g_bn) * 0.1
parameters = [C, W1, b1, W2, b2, bngain, bnbias]
for p in parameters:
    p.requires_grad = True
print(sum(p.nelement() for p in parameters), "parameters")'''
