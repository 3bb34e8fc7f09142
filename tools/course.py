"""Where the course lives in public: the one place a forking instructor edits.

The Colab badges and the first (setup) cell of every notebook are made from
these values by tools/make_exercises.py; run it after changing them.
"""

GITHUB_REPO = "backprop-ninja/backprop-ninja"  # owner/name on GitHub
BRANCH = "main"

RAW_URL = f"https://raw.githubusercontent.com/{GITHUB_REPO}/{BRANCH}/"
COLAB_URL = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

# The files a notebook imports from the repository; Colab downloads them.
HELPER_FILES = ["cmp.py", "data/__init__.py", "data/names.py"]


def badge_markdown(notebook_path):
    """Markdown for an 'Open in Colab' badge; notebook_path is relative to the repository root."""
    return f"[![Open In Colab]({COLAB_BADGE})]({COLAB_URL}{notebook_path})"


def setup_source():
    """The first code cell of every notebook: it makes `cmp` and `data` importable."""
    files = ", ".join(f'"{f}"' for f in HELPER_FILES)
    return f'''# Setup. In Google Colab: download the course helpers. Locally: use this repository's copies.
import os, sys
if "google.colab" in sys.modules:
    import urllib.request
    course_url = "{RAW_URL}"
    for path in [{files}]:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        urllib.request.urlretrieve(course_url + path, path)
else:
    sys.path.insert(0, os.path.abspath(".."))'''
