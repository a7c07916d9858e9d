"""Tiny notebooks for the study runner's tests (a title, a tagged parameters cell, one code cell)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(path, params: str, body: str = "raise RuntimeError('no kernel may start in these tests')") -> None:
    """Write a notebook whose ``parameters`` cell is ``params`` and whose one other code cell is ``body``."""
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# Title"), cell, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
