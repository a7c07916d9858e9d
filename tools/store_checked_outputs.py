"""Store the outputs that nbval checks, and nothing else, in the source notebooks.

The notebooks in ``notebooks/`` are kept without outputs, except for cells that
start with ``# NBVAL_CHECK_OUTPUT``: ``make test`` runs nbval in lax mode, which
compares exactly those cells with their stored output. After changing such a
cell, run (from the project root)

    .venv/bin/python tools/store_checked_outputs.py notebooks/01_otsu_baseline.ipynb

It executes the notebook with its default (smoke) parameters in a temporary
copy, then writes the checked cells' outputs and execution counts into the
source and clears all other outputs and execution counts.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

MARK = "# NBVAL_CHECK_OUTPUT"


def store(path: Path) -> int:
    """Execute ``path`` and keep only the outputs of its checked cells; return how many."""
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(executed), cwd=str(path.parent), progress_bar=False)
        ran = nbformat.read(executed, as_version=4)
    source = nbformat.read(path, as_version=4)
    outputs = {c.source: c for c in ran.cells if c.cell_type == "code"}
    kept = 0
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        if cell.source.startswith(MARK):
            # nbval compares only cells that were run, so the checked ones keep their count
            cell.execution_count = outputs[cell.source].execution_count
            cell.outputs = outputs[cell.source].get("outputs", [])
            kept += 1
        else:
            cell.outputs = []
    nbformat.write(source, path)
    return kept


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: stored the outputs of {store(Path(arg))} checked cells")
