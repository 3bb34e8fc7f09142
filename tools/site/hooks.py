"""MkDocs hook (mkdocs.yml: hooks): a notebook page's table of contents links to its headings as they are.

mkdocs-jupyter builds the table of contents of a notebook through Markdown, which drops inline code
from a heading: "Derive `dhprebn`, one checked step" became "Derive , one checked step" and linked to
#derive-one-checked-step, while the page's heading has id="derive-dhprebn-one-checked-step". Both list
the same Markdown headings in the same order, so each entry takes the id and text of its heading
(math stays TeX, for MathJax to render there too).
"""
import html
import re

# A Markdown heading in nbconvert's HTML: it carries an anchor link (headings in outputs do not).
HEADING = re.compile(r'<h[1-6][^>]*\bid="([^"]+)"[^>]*>(.*?)<a class="anchor-link"[^>]*>.*?</a>\s*</h[1-6]>',
                     re.DOTALL)


def entries_in_order(toc):
    for entry in toc:
        yield entry
        yield from entries_in_order(entry.children)


def on_page_content(content, page, **kwargs):
    if not page.file.src_path.endswith(".ipynb"):
        return content
    headings = HEADING.findall(content)
    entries = list(entries_in_order(page.toc))
    if len(entries) != len(headings):
        raise ValueError(f"{page.file.src_path}: {len(entries)} entries in the table of contents "
                         f"but {len(headings)} headings")
    for entry, (anchor, inner_html) in zip(entries, headings):
        entry.id = anchor
        entry.title = html.unescape(re.sub(r"<[^>]+>", "", inner_html)).strip()
    return content
