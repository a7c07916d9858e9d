"""A local Sphinx extension that presents the executed stage notebooks as a book.

Two things that neither Jupyter Book's configuration nor the notebooks can do:

* **Pages without machine paths.** papermill injects the parameters that a
  stage ran with as a cell tagged ``injected-parameters``; its run folder is an
  absolute path of the machine that ran it. On the page, every path-valued
  parameter is shown relative to the book (``run_dir = "runs/foam89"``), other
  absolute paths (a user's scan) by their file name, and the notebook's own
  ``parameters`` cell (the smoke defaults, which the injected cell overrides)
  is left out. Only the text that Sphinx parses changes (``source-read``), never
  the executed notebook.
* **A table of contents that follows one sample.** A toctree whose entries are
  all globs of the form ``runs/*/notebooks/<stage>`` (one per stage, in stage
  order) becomes one chapter per sample: the sample's first page, titled
  ``Sample <name>``, with its other stages as sections, so that Previous/Next
  walks through one sample from the scan to its porosity before the next one
  starts. Without this extension the same toctree lists the stages one after
  another, each for every sample.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
from pathlib import Path, PurePosixPath

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: A glob entry that the table of contents groups by sample: ``runs/*/notebooks/<stage>``.
_SAMPLE_GLOB = re.compile(r"^(?P<runs>[^*?\[\]]+)/\*/(?P<rest>notebooks/[^*?\[\]/]+)$")

#: Parameters whose value is a run folder or the parent of the run folders.
_FOLDER_PARAMETERS = {"run_dir": 2, "runs_dir": 3}  # levels above the page (runs/<sample>/notebooks/<page>)


# --------------------------------------------------------------------------- parameters on the page


def _shown(name: str, value: object, docname: str) -> object:
    """The value of one injected parameter as the page shows it (paths relative to the book)."""
    if isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        if name in _FOLDER_PARAMETERS:
            parts = PurePosixPath(docname).parts
            return posixpath.join(*parts[: len(parts) - _FOLDER_PARAMETERS[name]]) or "."
        return PurePosixPath(str(value).replace("\\", "/")).name
    if isinstance(value, list):
        return [_shown(name, v, docname) for v in value]
    if isinstance(value, dict):
        return {k: _shown(name, v, docname) for k, v in value.items()}
    return value


def present_parameters(notebook: dict, docname: str) -> bool:
    """Rewrite a notebook's injected-parameters cell for its page, in place.

    Parameters
    ----------
    notebook : dict
        The notebook as JSON (nbformat 4).
    docname : str
        The page's document name relative to the book's root, e.g.
        ``runs/foam89/notebooks/00_samples``: a run folder is shown as the
        folder of the page's run relative to the book (``runs/foam89``).

    Returns
    -------
    bool
        Whether the notebook had an injected-parameters cell.
    """
    cells = notebook.get("cells", [])
    injected = [c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    if not injected:
        return False
    for cell in injected:
        source = "".join(cell.get("source", []))
        lines = []
        for line in source.splitlines():
            name, sep, text = line.partition(" = ")
            try:
                value = ast.literal_eval(text) if sep else None
            except (ValueError, SyntaxError):
                lines.append(line)
                continue
            if sep and name.isidentifier():
                shown = _shown(name, value, docname)
                if shown != value:
                    line = f"{name} = {json.dumps(shown, ensure_ascii=False)}"
            lines.append(line)
        if lines[:1] == ["# Parameters"]:  # papermill's heading
            lines[0] = "# Parameters of this run (paths relative to the book)"
        cell["source"] = "\n".join(lines)
    for cell in cells:  # the defaults that the injected cell overrides
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    return True


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    if present_parameters(notebook, docname):
        source[0] = json.dumps(notebook, ensure_ascii=False)


# --------------------------------------------------------------------------- one sample after another


def _samples(srcdir: Path, runs: str, rest: str, suffixes: list[str]) -> dict[str, str]:
    """``{sample: docname}`` of the pages that ``<runs>/*/<rest>`` matches."""
    found = {}
    base = srcdir / runs
    if not base.is_dir():
        return found
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if any((folder / f"{rest}{suffix}").is_file() for suffix in suffixes):
            found[folder.name] = f"{runs}/{folder.name}/{rest}"
    return found


def group_by_sample(site_map, srcdir: Path, suffixes: list[str]) -> int:
    """Turn every toctree of ``runs/*/notebooks/<stage>`` globs into one chapter per sample, in place.

    Parameters
    ----------
    site_map : sphinx_external_toc.api.SiteMap
        The parsed ``_toc.yml``.
    srcdir : pathlib.Path
        The book's root.
    suffixes : list of str
        Source suffixes (``.ipynb``, ``.md``).

    Returns
    -------
    int
        The number of sample chapters made.
    """
    from sphinx_external_toc.api import Document, FileItem, GlobItem, TocTree

    made = 0
    for document in list(site_map.values()):
        for tree in document.subtrees:
            matches = [_SAMPLE_GLOB.match(str(item)) for item in tree.items]
            if not tree.items or not all(m and isinstance(item, GlobItem) for m, item in zip(matches, tree.items)):
                continue
            pages: dict[str, list[str]] = {}
            for m in matches:
                for sample, docname in _samples(srcdir, m["runs"], m["rest"], suffixes).items():
                    pages.setdefault(sample, []).append(docname)
            chapters = []
            for sample, docnames in sorted(pages.items()):
                first, *others = docnames
                subtrees = [TocTree(items=[FileItem(d) for d in others])] if others else []
                site_map[first] = Document(first, subtrees=subtrees, title=f"Sample {sample}")
                for docname in others:
                    site_map[docname] = Document(docname)
                chapters.append(FileItem(first))
                made += 1
            if chapters:  # no run yet: keep the globs, whose warning says what is missing
                tree.items = chapters
    return made


def _on_config_inited(app: Sphinx, config: Config) -> None:
    site_map = getattr(config, "external_site_map", None)
    if site_map is None:
        return
    made = group_by_sample(site_map, Path(app.srcdir), list(config.source_suffix))
    logger.info("[foamseg_book] %d sample chapters", made)


def setup(app: Sphinx) -> dict:
    """Register the two event handlers (after sphinx-external-toc has read ``_toc.yml``)."""
    app.connect("config-inited", _on_config_inited, priority=901)
    app.connect("source-read", _on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
