"""Copy a figure out of an executed notebook of a run, for the README.

    .venv/bin/python tools/extract_figure.py runs/foam86/notebooks/01_otsu_baseline.ipynb fig-01-otsu docs/otsu_foam86.png

Finds the code cell whose ``mystnb.figure.name`` starts with the given name (the
runner appends the sample), or whose cell id is the given name (``11-11``), and
writes its PNG output unchanged.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat


def extract(notebook: Path, name: str, out: Path) -> Path:
    """Write the PNG of figure ``name`` in ``notebook`` to ``out``."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if cell.cell_type == "code" and (figure.get("name", "").startswith(name) or cell.get("id") == name):
            for output in cell.get("outputs", []):
                if "image/png" in output.get("data", {}):
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(base64.b64decode(output["data"]["image/png"]))
                    return out
    raise SystemExit(f"{notebook} has no PNG output for a figure named {name!r}; was it executed?")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    print(extract(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
