"""Check every built page of the book in a real browser, at the widths readers use.

Usage (after ``make book``)::

    .venv/bin/python scripts/check_pages.py [--widths 1024 1280 1400] [--screenshots DIR]

Opens every ``_build/html/**/*.html`` page in headless Chromium (Debian's ``chromium``, driven by
Playwright without downloading a browser), waits for MathJax, and fails (exit status 1) on:

- horizontal overflow: the page wider than the window, or a display equation, table, figure or
  code block wider than its box (it would need a scrollbar);
- images that did not load;
- unresolved references (``??``) and raw MyST left in the text (``{glue:``, ``{numref}``, a
  code fence);
- visible tracebacks, warnings or stderr output in executed cells.

With ``--screenshots DIR`` it also saves a full-page PNG of every page at every width, to look at.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# the elements that must fit their box; MathJax 3 renders display maths as mjx-container[display]
CHECK_JS = r"""
() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) {
    problems.push(`page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
  }
  const main = document.querySelector("main") || document.body;
  const boxes = main.querySelectorAll(
    "mjx-container[display='true'], div.math, table, pre, figure, div.cell_output img, img");
  for (const el of boxes) {
    const box = el.closest("div.pst-scrollable-table-container, div.highlight, div.math, " +
                            "figure, div.cell_output") || el.parentElement;
    const over = Math.max(el.scrollWidth - el.clientWidth, el.getBoundingClientRect().width -
                          box.getBoundingClientRect().width);
    if (over > 2) {
      const text = (el.textContent || el.getAttribute("alt") || el.tagName).replace(/\s+/g, " ").slice(0, 60);
      problems.push(`${el.tagName.toLowerCase()} overflows by ${Math.round(over)}px: ${text}`);
    }
  }
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) problems.push(`image not loaded: ${img.src}`);
  }
  const text = main.innerText;
  for (const raw of ["??", "{glue:", "{numref}", "{ref}", "{cite", "```", "{math}"]) {
    if (text.includes(raw)) {
      const at = text.indexOf(raw);
      problems.push(`raw text '${raw}': ...${text.slice(Math.max(0, at - 40), at + 40)}...`);
    }
  }
  for (const el of main.querySelectorAll(".output.stderr, .output.traceback, .stderr")) {
    problems.push(`visible stderr: ${el.innerText.slice(0, 80)}`);
  }
  for (const bad of ["Traceback (most recent call last)", "Warning:", "WARNING"]) {
    if (text.includes(bad)) problems.push(`visible '${bad}'`);
  }
  return problems;
}
"""
WAIT_FOR_MATHJAX_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
}
"""


def check(
    build: Path, widths: list[int], screenshots: Path | None
) -> dict[str, list[str]]:
    """Every page's problems at every width, as ``{"page @ width": [problem, ...]}``."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    skip = {"search.html", "genindex.html"}
    pages = sorted(
        p
        for p in build.rglob("*.html")
        if "_static" not in p.parts
        and p.name not in skip
        # index.html only redirects to the root page
        and 'http-equiv="Refresh"' not in p.read_text(errors="ignore")[:2000]
    )
    if not pages:
        raise SystemExit(f"no pages under {build}: run `make book` first")
    found: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for width in widths:
            context = browser.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            for html in pages:
                page.goto(html.resolve().as_uri(), wait_until="load")
                page.evaluate(WAIT_FOR_MATHJAX_JS)
                problems = page.evaluate(CHECK_JS)
                name = str(html.relative_to(build))
                if problems:
                    found[f"{name} @ {width}px"] = problems
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    stem = name.replace("/", "_").removesuffix(".html")
                    page.screenshot(
                        path=str(screenshots / f"{stem}_{width}.png"), full_page=True
                    )
            context.close()
        browser.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 1280, 1400])
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    found = check(args.build, args.widths, args.screenshots)
    n_pages = len({key.split(" @ ")[0] for key in found})
    for key, problems in found.items():
        print(f"{key}:")
        for problem in problems:
            print(f"  - {problem}")
    if found:
        print(f"FAILED: {len(found)} page views with problems ({n_pages} pages)")
        return 1
    print(f"all pages pass at {', '.join(map(str, args.widths))} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
