"""Write book/api/foamlib_<module>.rst for every public module of foamlib and list them in book/api/index.md.

Run after adding a module: ``python tools/make_api_pages.py``. tests/test_book.py checks that every module
has its page.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    modules = sorted(p.stem for p in (ROOT / "foamlib").glob("*.py") if not p.stem.startswith("_"))
    api = ROOT / "book" / "api"
    for name in modules:
        title = f"``foamlib.{name}``"
        page = api / f"foamlib_{name}.rst"
        text = f"{title}\n{'=' * len(title)}\n\n.. automodule:: foamlib.{name}\n"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
    for page in api.glob("foamlib_*.rst"):
        if page.stem.removeprefix("foamlib_") not in modules:
            page.unlink()
    index = api / "index.md"
    listing = "".join(f"   foamlib.{name}\n" for name in modules)
    text = re.sub(r"(\.\. autosummary::\n\n)(?:   foamlib\.\w+\n)+", lambda m: m.group(1) + listing, index.read_text())
    index.write_text(text)
    print(f"{len(modules)} module pages in {api.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
