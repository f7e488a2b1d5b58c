"""Publishing, Binder and citation metadata agree with each other (no network, no build).

The repository URL is kept in one place, ``_config.yml`` (``repository.url``); every other copy
(CITATION.cff, the BibTeX entries in README.md and intro.md, the GitHub Pages base URL) is checked
against it here. The torch pin and its index are checked to be the CPU build in both the Makefile
and environment.yml, and the GitHub workflows to parse and to name real actions.
"""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "torch==2.13.0+cpu"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

# Actions the workflows may use, each checked to exist with this major-version tag in its public
# repository (2026-11-27); the versions are those of the Jupyter Book 1.x publishing page.
REAL_ACTIONS = {
    "actions/checkout@v5",
    "actions/setup-python@v6",
    "actions/upload-pages-artifact@v4",
    "actions/deploy-pages@v4",
}


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _repository_url() -> str:
    return _yaml("_config.yml")["repository"]["url"]


def _pages_url(repository_url: str) -> str:
    """GitHub Pages address of a project repository: https://OWNER.github.io/NAME/."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", repository_url)
    assert match, f"repository.url is not a GitHub repository URL: {repository_url!r}"
    owner, name = match.groups()
    return f"https://{owner.lower()}.github.io/{name}/"


def _bibtex_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bibtex\n(.*?)```", markdown, flags=re.S)


def _bib_field(entry: str, field: str) -> str:
    match = re.search(rf"^\s*{field}\s*=\s*\{{(.*)\}},?\s*$", entry, flags=re.M)
    assert match, f"no {field} in {entry[:40]!r}"
    return match.group(1)


def _bib_entries(text: str) -> dict[str, str]:
    """Key -> entry text of every ``@type{key, ...}`` entry (entries end at a closing brace line)."""
    return dict(re.findall(r"@\w+\{(\w+),\n(.*?)\n\}", text, flags=re.S))


def test_pages_base_url_is_derived_from_the_repository():
    config = _yaml("_config.yml")
    assert config["html"]["baseurl"] == _pages_url(_repository_url())


def test_citation_cff_points_at_the_repository_and_the_pages():
    cff = _yaml("CITATION.cff")
    assert cff["repository-code"] == _repository_url()
    assert cff["url"] == _pages_url(_repository_url())
    assert cff["cff-version"] == "1.2.0"


@pytest.mark.parametrize("document", ["README.md", "intro.md"])
def test_document_gives_bibtex_for_the_book_and_the_paper(document):
    blocks = _bibtex_blocks((ROOT / document).read_text())
    assert len(blocks) == 1, (
        f"{document}: expected one bibtex block, found {len(blocks)}"
    )
    entries = _bib_entries(blocks[0])
    assert set(entries) == {"smpbook2026", "liu2021smp"}
    book, paper = entries["smpbook2026"], entries["liu2021smp"]
    assert _bib_field(book, "howpublished") == rf"\url{{{_repository_url()}}}"
    assert _bib_field(book, "url") == _pages_url(_repository_url())
    assert _bib_field(book, "version") == str(_yaml("CITATION.cff")["version"])
    # the paper's entry says what references.bib (the book's own bibliography) says
    stored = _bib_entries((ROOT / "references.bib").read_text())["liu2021smp"]
    for field in ("title", "author", "journal", "year", "url"):
        assert _bib_field(paper, field) == _bib_field(stored, field), field
    assert _bib_field(paper, "eprint") == "2103.14731"


def test_readme_and_intro_give_the_same_bibtex():
    readme, intro = ((ROOT / name).read_text() for name in ("README.md", "intro.md"))
    assert _bibtex_blocks(readme) == _bibtex_blocks(intro)


def test_book_buttons_and_launch_interface():
    config = _yaml("_config.yml")
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"
    for button in (
        "use_repository_button",
        "use_issues_button",
        "use_edit_page_button",
    ):
        assert config["html"][button] is True, button


def test_intro_tells_binder_readers_to_shut_kernels():
    intro = (ROOT / "intro.md").read_text()
    assert "2 GB" in intro and "Shut Down" in intro


def _makefile_variable(name: str) -> str:
    match = re.search(
        rf"^{name}\s*\?=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), flags=re.M
    )
    assert match, f"Makefile has no {name} ?= ..."
    return match.group(1)


def test_makefile_installs_the_cpu_build_from_the_cpu_index():
    assert _makefile_variable("TORCH") == TORCH_PIN
    assert _makefile_variable("TORCH_INDEX") == TORCH_INDEX
    recipe = (ROOT / "Makefile").read_text()
    assert '--extra-index-url "$(TORCH_INDEX)" "$(TORCH)"' in recipe


def _environment_pip() -> list[str]:
    deps = _yaml("environment.yml")["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    return pip


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def test_environment_pins_the_cpu_build_from_the_cpu_index():
    pip = _environment_pip()
    assert f"--extra-index-url {TORCH_INDEX}" in pip
    assert TORCH_PIN in pip


def test_environment_has_no_local_reference():
    """repo2docker installs the environment before copying the repository only when nothing in it
    refers to the repository's files (``-e .``, ``-r file``, a path)."""
    for line in _environment_pip():
        assert not line.startswith(("-e", "-r", "-c", ".", "/")), line
        assert "file://" not in line, line


def test_environment_lists_the_runtime_dependencies():
    """The same requirements as pyproject.toml (torch pinned to the CPU build), plus what the
    chapters need to run: myst-nb (glue) and ipykernel; no test or book-building tools."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {_name(r): r for r in pyproject["project"]["dependencies"]}
    listed = {_name(r): r for r in _environment_pip() if not r.startswith("-")}
    assert listed.pop("myst-nb").startswith("myst-nb")
    assert listed.pop("ipykernel").startswith("ipykernel")
    assert listed.pop("torch") == TORCH_PIN
    wanted.pop("torch")
    assert listed == wanted
    for tool in ("pytest", "nbval", "hypothesis", "jupyter-book"):
        assert tool not in listed


def test_postbuild_installs_only_the_package():
    post_build = ROOT / "postBuild"
    assert post_build.stat().st_mode & stat.S_IXUSR, "postBuild must be executable"
    commands = [
        line
        for line in post_build.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert commands[-1] == "python -m pip install --no-cache-dir --no-deps -e ."


def _workflow(name: str) -> dict:
    workflow = _yaml(f".github/workflows/{name}")
    # YAML 1.1 (PyYAML) reads the bare key `on` as True
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("name", ["ci.yml", "pages.yml"])
def test_workflow_parses_and_names_real_actions(name):
    workflow = _workflow(name)
    assert workflow["jobs"]
    for step in _steps(workflow):
        if "uses" in step:
            assert step["uses"] in REAL_ACTIONS, step["uses"]


def test_ci_workflow_runs_ci_script_on_push_and_pull_request():
    workflow = _workflow("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert any(step.get("run") == "bash .ci/run" for step in _steps(workflow))


def test_pages_workflow_builds_with_make_book_and_deploys_the_html():
    workflow = _workflow("pages.yml")
    steps = _steps(workflow)
    assert any(step.get("run") == "make book" for step in steps)
    upload = [
        s
        for s in steps
        if s.get("uses", "").startswith("actions/upload-pages-artifact@")
    ]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")
    # `make book` is the README's command, and it runs the README's jupyter-book build line
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme
    book_recipe = re.search(
        r"^book:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.M | re.S
    )
    assert "jupyter-book build . --all -W -n --keep-going" in book_recipe.group(0)
    assert "`jupyter-book build . --all -W -n --keep-going`" in readme
