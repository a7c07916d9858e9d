"""Write book/api/foamlib_<module>.rst for every public module of foamlib and book/api/index.md, grouped by stage.

Run after adding a module: ``python tools/make_api_pages.py``. A new module must be placed in one of
:data:`GROUPS` (the script refuses to run otherwise). tests/test_book.py checks that every module has its
page and that the index is what this script writes.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The API index's sections, in the order data flows through the study: (title, what it holds, modules).
GROUPS = (
    ("Scans in, structure out",
     "Reading scans of any size and type, the demo samples, global thresholds and the measures of a segmented "
     "structure (porosity, pore sizes, wall thickness), and the porosity from the scan's grey levels or a "
     "measured density.",
     ("io", "lazy", "omezarr", "samples", "phantom", "threshold", "structure", "densitometry", "pycnometry")),
    ("Step 1: synthetic structures and their images",
     "Closed-cell foams and the other materials' generators, fitted to the measured statistics, rendered as "
     "CT-like slices and stored as training data sets.",
     ("foam", "generators", "fitting", "render", "patches", "datasets")),
    ("The U-Net and segmentation",
     "The network, its loss, training and hyper-parameter search, segmentation of scans larger than memory, "
     "and export.",
     ("unet", "losses", "trainloop", "training", "hpo", "segment", "tiling", "device", "export", "torchfiles")),
    ("Step 2: GAN, walls and CycleGAN",
     "The GAN of binary slices, thin walls by watershed (or where the scan shows them), the CycleGAN that draws "
     "them like the scan, and the wall-fraction sweep.",
     ("gan", "walls", "faint_walls", "cyclegan", "sweep")),
    ("Evaluation",
     "Image similarity (FID, KID, embeddings), controlled degradations, agreement of the two steps, the "
     "independent test scans, and the results page's tables and figures.",
     ("features", "fid", "embed", "degrade", "agreement", "independent", "report", "plot", "tables")),
    ("The study and its run folders",
     "The runner, the run folder as code, every stage's metrics, costs, progress, random streams, Dask, "
     "argument checks and the command line.",
     ("study", "runfolder", "runs", "metrics", "costs", "progress", "streams", "distributed", "checks", "cli")),
)

HEADER = """# API reference

`foamlib` is the tested library under the notebooks: every stage's computation is a function here,
with a numpydoc docstring that states shapes, dtypes and units. `import foamlib` is fast; each module
imports what it needs (torch, umap, optuna) itself. One page per module, built from the docstrings,
grouped in the order data flows through the study.
"""

FOOTER = """
```{eval-rst}
.. py:module:: foamlib
   :synopsis: the package; its modules are listed above
```
"""


def index_text(modules: list[str]) -> str:
    """The text of book/api/index.md for these modules; raises if one is in no group or a group names a missing one."""
    grouped = [name for _, _, names in GROUPS for name in names]
    missing = sorted(set(modules) - set(grouped))
    stale = sorted(set(grouped) - set(modules))
    twice = sorted({name for name in grouped if grouped.count(name) > 1})
    if missing or stale or twice:
        raise SystemExit(f"tools/make_api_pages.py GROUPS: modules in no group {missing}, "
                         f"not in foamlib {stale}, in two groups {twice}")
    parts = [HEADER]
    for title, text, names in GROUPS:
        listing = "".join(f"   foamlib.{name}\n" for name in names)
        parts.append(f"\n## {title}\n\n{text}\n\n```{{eval-rst}}\n.. autosummary::\n\n{listing}```\n")
    parts.append(FOOTER)
    return "".join(parts)


def public_modules() -> list[str]:
    return sorted(p.stem for p in (ROOT / "foamlib").glob("*.py") if not p.stem.startswith("_"))


def main() -> None:
    modules = public_modules()
    api = ROOT / "book" / "api"
    index = index_text(modules)
    for name in modules:
        title = f"``foamlib.{name}``"
        page = api / f"foamlib_{name}.rst"
        text = f"{title}\n{'=' * len(title)}\n\n.. automodule:: foamlib.{name}\n"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
    for page in api.glob("foamlib_*.rst"):
        if page.stem.removeprefix("foamlib_") not in modules:
            page.unlink()
    (api / "index.md").write_text(index)
    print(f"{len(modules)} module pages in {api.relative_to(ROOT)}, in {len(GROUPS)} groups")


if __name__ == "__main__":
    sys.exit(main())
