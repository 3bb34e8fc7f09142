"""Build the course's website from the committed notebooks, offline: `bash tools/run site [--serve]`.

MkDocs with Material for MkDocs and mkdocs-jupyter (configured in tools/site/mkdocs.yml). This script
lays out the pages in tools/site/_build/docs, then MkDocs writes the site to tools/site/_build/site:
- index.md: the README up to its "Test" section (under each exercise's name, Colab links),
  its links made to point at the solution pages or at the files on GitHub;
- one page per solution notebook, in the order of the file names, with its committed outputs (never
  executed again; no set-up cell, no solution markers) and, under its title, "open in Colab" and
  "download" for the exercise and the solution;
- instructors.md: tools/README.md, the instructors' page, last in the navigation;
- the .ipynb files to download, and MathJax from the jupyter-server-mathjax package (no CDN).
The course's address (GitHub, Colab, the Pages URL) comes from tools/course.py.
"""
import argparse
import functools
import http.server
import os
import re
import shutil
import sys
from pathlib import Path

import jupyter_server_mathjax
import nbformat
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402
from make_exercises import BEGIN, END  # noqa: E402

BUILD = HERE / "_build"
DOCS = BUILD / "docs"
SITE = BUILD / "site"
GITHUB_URL = f"https://github.com/{course.GITHUB_REPO}/blob/{course.BRANCH}/"
OWNER, NAME = course.GITHUB_REPO.split("/")
PAGES_URL = f"https://{OWNER}.github.io/{NAME}/"  # where a fork's Pages workflow publishes the site
MARKDOWN_PAGES = {"README.md": "index.md", "tools/README.md": "instructors.md"}  # the site's Markdown pages


def solution_notebooks():
    """The course in its order: solutions/NN_*.ipynb sorted by file name."""
    return sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def site_links(markdown, folder, page_suffix):
    """Markdown links as they work on the site. A link to a course notebook from `folder` (README: ".",
    a notebook: "solutions") goes to its page, NN_name + page_suffix; a link to a README goes to its page
    (MARKDOWN_PAGES: the .md source from a Markdown page, whose links MkDocs checks and makes .html, the
    .html page from a notebook); a link to any other file of the repository goes to the file on GitHub."""
    def link(match):
        label, target = match.groups()
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        target, hash_, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(folder, target))
        if re.fullmatch(r"(notebooks|solutions)/\d\d_\w+\.ipynb", path):
            return f"[{label}]({Path(path).stem}{page_suffix}{hash_}{anchor})"
        if path in MARKDOWN_PAGES:
            page = MARKDOWN_PAGES[path]
            return f"[{label}]({page if page_suffix != '.html' else Path(page).stem + '.html'}{hash_}{anchor})"
        if target.endswith("/"):  # a folder
            return f"[{label}]({GITHUB_URL.replace('/blob/', '/tree/')}{path}/)"
        return f"[{label}]({GITHUB_URL}{path}{hash_}{anchor})"

    return re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", link, markdown)


def home_page():
    """The README up to "## Test", with links fixed for the site and Colab links in the exercise table."""
    readme = (ROOT / "README.md").read_text()
    text = site_links(readme.split("\n## Test\n")[0], ".", ".ipynb")  # MkDocs makes .ipynb links .html
    lines = []
    for line in text.splitlines():  # under each exercise's name in the table: its two notebooks in Colab
        row = re.match(r"\| (\[[^\]]*\]\((\d\d_\w+)\.ipynb\)) \|", line)
        if row:
            link, name = row.groups()
            line = line.replace(link, f"{link}<br>Colab: [exercise]({course.COLAB_URL}notebooks/{name}.ipynb),"
                                      f" [solution]({course.COLAB_URL}solutions/{name}.ipynb)", 1)
        lines.append(line)
    return "\n".join(lines) + "\n"


def instructors_page():
    """tools/README.md, with links fixed for the site."""
    return site_links((ROOT / "tools" / "README.md").read_text(), "tools", ".ipynb")


def links_cell(name):
    """The links under a page's title: the exercise and the solution, each to open in Colab or download."""
    rows = []
    for folder, label, primary in (("notebooks", "Exercise", " md-button--primary"), ("solutions", "Solution", "")):
        rows.append(f'<div class="notebook-links"><span>{label}</span>\n'
                    f'<a class="md-button{primary}" href="{course.COLAB_URL}{folder}/{name}">Open in Colab</a>\n'
                    f'<a class="md-button" href="downloads/{folder}/{name}" download>Download</a></div>')
    return nbformat.v4.new_markdown_cell(
        "\n".join(rows) + "\n\n"
        "This page is the worked solution, with the outputs of a full run. The exercise notebook has "
        "the same cells, with the code you write left as `# TODO`.")


def title_cell(notebook):
    """The index of the notebook's title, its first Markdown cell that starts with `# `."""
    return next(i for i, cell in enumerate(notebook.cells)
                if cell.cell_type == "markdown" and cell.source.startswith("# "))


SKIPPED_CELLS = {"badge", "setup"}  # tags: the Colab badge (an image from the internet), the Colab set-up


def solution_page(path):
    """The solution notebook for the site: links under its title, no Colab plumbing.

    Returns the notebook and its title for the navigation."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [cell for cell in notebook.cells if not SKIPPED_CELLS & set(cell.metadata.get("tags", []))]
    for cell in notebook.cells:
        cell.metadata.pop("tags", None)  # for the course's tools: on a page they would show, and be searched
    title = title_cell(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = site_links(cell.source, "solutions", ".html")
        else:  # the exercise generator's markers: readers see the code alone
            cell.source = "\n".join(line for line in cell.source.splitlines() if line.strip() not in (BEGIN, END))
    notebook.cells.insert(title + 1, links_cell(path.name))
    return notebook, notebook.cells[title].source.splitlines()[0][2:].replace("`", "")


def build():
    """Lay out the pages, build the site; return the folder of the built site."""
    shutil.rmtree(BUILD, ignore_errors=True)
    (DOCS / "assets").mkdir(parents=True)
    (DOCS / "index.md").write_text(home_page())
    for name in ("site.css", "site.js"):
        shutil.copy(HERE / name, DOCS / "assets" / name)
    nav = [{"Home": "index.md"}]
    for path in solution_notebooks():
        notebook, title = solution_page(path)
        nbformat.write(notebook, DOCS / path.name)
        nav.append({title: path.name})
    (DOCS / "instructors.md").write_text(instructors_page())
    nav.append({"Instructors": "instructors.md"})
    config = load_config(str(HERE / "mkdocs.yml"), site_url=PAGES_URL, nav=nav)
    mkdocs_build(config)
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", SITE / "assets" / "mathjax")
    for folder in ("notebooks", "solutions"):
        (SITE / "downloads" / folder).mkdir(parents=True)
        for path in solution_notebooks():
            shutil.copy(ROOT / folder / path.name, SITE / "downloads" / folder / path.name)
    return SITE


def serve(port):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=SITE)
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"Serving the course at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
        server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="then serve it on localhost")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    site = build()
    print(f"The course's website is in {site.relative_to(ROOT)}: open {site / 'index.html'}\n"
          "(its search needs a web server: bash tools/run site --serve)")
    if args.serve:
        serve(args.port)


if __name__ == "__main__":
    main()
