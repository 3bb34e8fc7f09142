// The course's website, in the reader's browser. Loaded on every page (mkdocs.yml: extra_javascript).

// Math on the home page (Markdown, from the README): the local MathJax, as the notebook pages load it.
// Its settings are in overrides/main.html; a notebook page has loaded it already.
if (!(window.MathJax && window.MathJax.Hub) && document.querySelector(".arithmatex")) {
  const script = document.createElement("script");
  script.src = "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe";
  document.head.appendChild(script);
}

// Long outputs (e.g. a training log) start collapsed: the reader opens them with a click.
const LONG_OUTPUT_LINES = 15;
for (const output of document.querySelectorAll(".jp-OutputArea-output")) {
  const pre = output.querySelector("pre");
  const lines = pre ? pre.textContent.trimEnd().split("\n").length : 0;
  if (lines > LONG_OUTPUT_LINES) {
    const details = document.createElement("details");
    details.className = "long-output";
    details.innerHTML = `<summary>Output: ${lines} lines</summary>`;
    output.replaceWith(details);
    details.appendChild(output);
  }
}

// Search results come and go as the reader types: typeset the math in them too.
const searchResults = document.querySelector(".md-search-result");
if (searchResults) {
  new MutationObserver(() => window.MathJax && MathJax.Hub && MathJax.Hub.Queue(["Typeset", MathJax.Hub, searchResults]))
    .observe(searchResults, {childList: true, subtree: true});
}
