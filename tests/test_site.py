"""The course's website (`bash tools/run site`, tools/site/build.py), read in a real browser with no internet.

The site is built once per test session, served from localhost, and opened in Chromium through Playwright
(as tests/test_browser.py does); any request that leaves localhost is blocked and fails the test, so the
site must work offline (no CDN for math, no web fonts). Screenshots of the home page (wide and 375 px)
and of exercise 3's solution go to tools/site/_build/screenshots/.
Also: the GitHub Pages workflow publishes what this build makes, at the address from tools/course.py.
"""
import fcntl
import functools
import html.parser
import http.server
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import nbformat
import pytest
import yaml
from playwright.sync_api import expect

import course
from test_browser import browser  # noqa: F401  (the fixture: Chromium as the JupyterLab test launches it)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "tools" / "site" / "_build"
SITE = BUILD / "site"
SHOTS = BUILD / "screenshots"
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
SOLUTIONS = sorted(p.name for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
EXERCISE_3 = next(name for name in SOLUTIONS if name.startswith("03_"))


@pytest.fixture(scope="session")
def site(tmp_path_factory, worker_id):
    """Build the site once, as `bash tools/run site` does. Under pytest-xdist without --dist loadfile,
    this file's tests may run in two workers: the first builds, the other waits for it (the build
    empties tools/site/_build, so two at once would break each other)."""
    if worker_id == "master":
        build_site()
        return SITE
    session = tmp_path_factory.getbasetemp().parent  # shared by this session's workers
    with open(session / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (session / "site.built").exists():
            build_site()
            (session / "site.built").write_text("")
    return SITE


def build_site():
    start = time.monotonic()
    result = subprocess.run([sys.executable, "tools/site/build.py"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"site built in {time.monotonic() - start:.1f} s")
    SHOTS.mkdir(exist_ok=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def url(site):
    """The built site on a free localhost port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class Visit:
    """A page opened with everything that went wrong recorded: console errors, uncaught exceptions,
    failed or refused requests (anything off localhost is refused), HTTP errors."""

    def __init__(self, browser, url, viewport=(1280, 900)):
        self.base = url
        self.problems = []
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.page.set_default_timeout(60_000)
        self.page.route("**/*", self.only_localhost)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def only_localhost(self, route):
        if route.request.url.startswith(self.base) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.problems.append(f"off the machine: {route.request.url}")
            route.abort()

    def open(self, path):
        self.page.goto(self.base + path, wait_until="load")
        wait_for_mathjax(self.page)
        return self.page


def wait_for_mathjax(page):
    """MathJax typesets in the background, after it has started: wait until its queue has run."""
    page.wait_for_function("() => !(window.MathJax && MathJax.Hub) || MathJax.isReady")
    page.evaluate("() => window.MathJax && MathJax.Hub && new Promise(done => MathJax.Hub.Queue(done))")


def typeset_all(page):
    """Open every <details> (hints, long outputs), let MathJax finish, return the visible text."""
    page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
    wait_for_mathjax(page)
    return page.inner_text("body")


def test_every_page_loads_with_rendered_math_and_no_error_or_broken_link(browser, url):
    """From the home page, every page of the site: no console error, every internal link and image
    there, every #anchor on its page, all math typeset (no raw TeX left in the visible text)."""
    to_visit, visited, anchors, links = ["index.html"], {}, {}, []
    while to_visit:
        path = to_visit.pop()
        if path in visited:
            continue
        visit = Visit(browser, url)
        page = visit.open(path)
        text = typeset_all(page)
        visited[path] = visit.problems
        anchors[path] = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
        for target in page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            if target.startswith(url):
                links.append((path, target[len(url):]))
                linked = urldefrag(target[len(url):]).url
                if linked.endswith(".html") and linked not in visited:
                    to_visit.append(linked)
        broken_images = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 80))")
        assert not broken_images, f"{path}: images that did not load: {broken_images}"
        assert visit.problems == [], f"{path}: {visit.problems}"
        prose = page.evaluate("""() => {  // the visible text without code, where r"\\[(\\w+)\\]" is no TeX
            const code = [...document.querySelectorAll('pre, code')], shown = code.map(e => e.style.display);
            code.forEach(e => { e.style.display = 'none'; });
            const prose = document.body.innerText;
            code.forEach((e, i) => { e.style.display = shown[i]; });
            return prose; }""")
        raw_tex = [tex for tex in ("$$", "\\frac", "\\partial", "\\(", "\\[", "Math Processing Error") if tex in prose]
        assert not raw_tex, f"{path}: math left as TeX or not rendered: {raw_tex}"
        if path not in ("404.html", "instructors.html"):  # the instructors' page has no math
            assert page.locator(".MathJax").count() > 0, f"{path}: no typeset math"
        page.close()

    assert set(visited) >= ({"index.html", "instructors.html"}
                            | {name.replace(".ipynb", ".html") for name in SOLUTIONS})
    for page_path, target in links:
        target_path, anchor = urldefrag(target)
        target_path = urlparse(target_path).path or page_path
        assert (SITE / target_path).is_file(), f"{page_path}: broken link to {target}"
        if anchor and target_path.endswith(".html"):
            assert anchor in anchors[target_path], f"{page_path}: link to a missing anchor {target}"


class Links(html.parser.HTMLParser):
    """The links of an HTML page: (attributes, text) of each <a>."""

    def __init__(self, page):
        super().__init__()
        self.links, self.open = [], None
        self.feed(page)

    def handle_starttag(self, tag, attributes):
        if tag == "a":
            self.open = (dict(attributes), [])

    def handle_data(self, data):
        if self.open:
            self.open[1].append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self.open:
            self.links.append((self.open[0], " ".join("".join(self.open[1]).split())))
            self.open = None


def test_each_solution_page_links_to_its_notebooks_in_colab_and_to_download(site):
    for name in SOLUTIONS:
        links = Links((site / name.replace(".ipynb", ".html")).read_text()).links
        for folder in ("notebooks", "solutions"):
            assert [text for a, text in links if a.get("href") == f"{course.COLAB_URL}{folder}/{name}"] == ["Open in Colab"]
            download = [(a, text) for a, text in links if a.get("href") == f"downloads/{folder}/{name}"]
            assert [("download" in a, text) for a, text in download] == [(True, "Download")]
            assert (site / "downloads" / folder / name).read_bytes() == (ROOT / folder / name).read_bytes()


def test_the_navigation_follows_the_course_order(site):
    """The site's menu: the home page, then each solution in file-name order, under its notebook's title,
    then the instructors' page."""
    links = [(a["href"], text) for a, text in Links((site / "index.html").read_text()).links
             if "md-nav__link" in a.get("class", "").split() and a["href"].endswith(".html")]
    titles = []
    for name in SOLUTIONS:
        cells = nbformat.read(ROOT / "solutions" / name, as_version=4).cells
        title = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("# "))
        titles.append((name.replace(".ipynb", ".html"), title.splitlines()[0][2:].replace("`", "")))
    assert links == [("index.html", "Home")] + titles + [("instructors.html", "Instructors")]


def test_the_home_page_is_the_students_readme_and_the_instructors_have_their_own_page(site):
    """The home page is README.md up to "Test"; tools/README.md (grading, the generator) is a page of its own."""
    home = (site / "index.html").read_text()
    instructors = (site / "instructors.html").read_text()
    for heading in ("The exercises", "How the checks work", "Start"):
        assert f">{heading}<" in home
    for heading in ("Changing the course", "Grading a class", "Layout"):
        assert f">{heading}<" in instructors and f">{heading}<" not in home
    assert 'href="index.html#start"' in instructors  # tools/README.md's link to ../README.md#start


def markdown_links(path):
    """The relative links of a Markdown file: (target file, #anchor or '')."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target):
            file, _, anchor = target.partition("#")
            yield (path.parent / file).resolve() if file else path, anchor


def anchors(path):
    """GitHub's (and MkDocs's) ids of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("readme", ["README.md", "tools/README.md"])
def test_every_relative_link_of_the_readmes_resolves(readme):
    for target, anchor in markdown_links(ROOT / readme):
        assert target.exists(), f"{readme}: broken link to {target}"
        if anchor:
            assert anchor in anchors(target), f"{readme}: no heading #{anchor} in {target.relative_to(ROOT)}"


def test_a_hint_is_closed_until_clicked_and_long_outputs_are_collapsed(browser, url):
    visit = Visit(browser, url)
    page = visit.open(EXERCISE_3.replace(".ipynb", ".html"))
    page.screenshot(path=SHOTS / "exercise-3.png")  # for a person to look at
    page.locator(".MathJax_Display").first.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)  # the header's title slides in after a scroll: a still picture
    page.screenshot(path=SHOTS / "exercise-3-math.png")
    hint = page.locator("details:has(> summary:text-matches('^Hint'))").first
    expect(hint).to_have_count(1)
    assert not hint.evaluate("d => d.open")
    body = hint.locator(":scope > :not(summary)").first
    expect(body).to_be_hidden()
    hint.locator("> summary").click()
    assert hint.evaluate("d => d.open")
    expect(body).to_be_visible()
    page.screenshot(path=SHOTS / "exercise-3-hint-open.png")

    page = visit.open(next(n for n in SOLUTIONS if n.startswith("04_")).replace(".ipynb", ".html"))
    long_output = page.locator("details.long-output").first
    expect(long_output).to_have_count(1)
    expect(long_output.locator(".jp-OutputArea-output")).to_be_hidden()
    long_output.locator("> summary").click()
    expect(long_output.locator(".jp-OutputArea-output")).to_be_visible()
    assert visit.problems == []
    page.close()


def test_the_search_finds_bessel_in_exercise_3(browser, url):
    visit = Visit(browser, url)
    page = visit.open("index.html")
    page.locator("input.md-search__input").click()
    page.keyboard.type("Bessel")  # as a reader types: the search listens to keys
    results = page.locator(".md-search-result__item a")
    expect(results.first).to_be_visible()
    hrefs = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(EXERCISE_3.replace(".ipynb", ".html") in href for href in hrefs), hrefs
    expect(page.locator(".md-search-result .MathJax").first).to_be_visible()  # math in the results, typeset
    assert "\\frac" not in page.locator(".md-search-result").inner_text()
    page.screenshot(path=SHOTS / "search-bessel.png")
    assert visit.problems == []
    page.close()


def test_the_home_page_fits_a_phone_and_screenshots(browser, url):
    """375 px wide: no horizontal scroll. Screenshots for a person to look at: the home page (whole) wide and
    on a phone, exercise 3's solution on a phone at its top and at its first displayed formula."""
    visit = Visit(browser, url, viewport=(375, 812))
    page = visit.open("index.html")
    width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the home page scrolls sideways on a phone: {width}"
    sideways = page.evaluate("""() => [...document.querySelectorAll('.md-typeset__scrollwrap')]
                                    .filter(e => e.scrollWidth > e.clientWidth).map(e => e.innerText.slice(0, 40))""")
    assert sideways == [], f"on the home page on a phone, these scroll sideways: {sideways}"
    page.screenshot(path=SHOTS / "home-375px.png", full_page=True)
    page = visit.open(EXERCISE_3.replace(".ipynb", ".html"))
    cut_off = page.evaluate("""() => [...document.querySelectorAll('.MathJax_Display')]
        .filter(e => e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX !== 'auto').length""")
    assert cut_off == 0, f"{cut_off} formulas of exercise 3 are cut off on a phone"
    page.screenshot(path=SHOTS / "exercise-3-375px.png")
    page.locator(".MathJax_Display").first.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)  # the header's title slides in after a scroll: a still picture
    page.screenshot(path=SHOTS / "exercise-3-math-375px.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    page = visit.open("index.html")
    page.screenshot(path=SHOTS / "home.png", full_page=True)
    assert visit.problems == []
    print("screenshots:", SHOTS)
    page.close()


def test_the_site_knows_its_address_from_course_py(site):
    owner, name = course.GITHUB_REPO.split("/")
    index = (site / "index.html").read_text()
    assert f'<link rel="canonical" href="https://{owner}.github.io/{name}/index.html">' in index


def test_the_pages_workflow_publishes_this_build_from_main():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == [course.BRANCH]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build_steps = workflow["jobs"]["build"]["steps"]
    runs = [line.strip() for step in build_steps for line in step.get("run", "").splitlines()]
    assert "bash tools/run site" in runs
    upload = next(s for s in build_steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert ROOT / upload["with"]["path"] == SITE
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
