"""The rendered book: built from a smoke run, it reads as finished.

The slow test runs the smoke study for one demo sample into a temporary copy
of the book's sources, builds the book as ``make book`` does
(``jupyter-book build . -W -n --keep-going``) and reads every page: no
``PosixPath`` reprs, no absolute path of this machine, no raw stderr or
``Warning`` text, no traceback, no widget left-overs. The fast tests check the
book's own extension and the API reference's coverage.
"""

from __future__ import annotations

import html.parser
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from project_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


def _extension():
    return load_script("book/_ext/foamseg_book.py")


# --------------------------------------------------------------------------- fast: the extension and the toc


def _notebook(injected: str) -> dict:
    return {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": 'run_dir = "../runs/_smoke/x"'},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": injected},
        {"cell_type": "code", "metadata": {}, "source": "1 + 1"},
    ]}


def test_injected_parameters_are_shown_relative_to_the_book_and_the_defaults_cell_is_removed():
    ext = _extension()
    nb = _notebook('# Parameters\nsample = "foam89"\nrun_dir = "/tmp/pytest-7/runs/foam89"\n'
                   'scan_path = "/home/me/scans/my foam.tif"\nsize = 64\nfailures = {}\n')
    assert ext.present_parameters(nb, "runs/foam89/notebooks/00_samples")
    shown = nb["cells"][1]["source"]
    assert shown.splitlines() == ["# Parameters of this run (paths relative to the book)", 'sample = "foam89"',
                                  'run_dir = "runs/foam89"', 'scan_path = "my foam.tif"', "size = 64", "failures = {}"]
    assert "remove-cell" in nb["cells"][0]["metadata"]["tags"]
    assert "remove-cell" not in nb["cells"][2]["metadata"].get("tags", [])
    study = _notebook('# Parameters\nruns_dir = "/work/x/runs"\nsamples = ["foam89"]\n')
    ext.present_parameters(study, "runs/_study/notebooks/12_results")
    assert 'runs_dir = "runs"' in study["cells"][1]["source"]


def test_a_notebook_without_injected_parameters_is_left_as_it_is():
    ext = _extension()
    nb = _notebook("")
    nb["cells"][1]["metadata"]["tags"] = []
    before = json.dumps(nb)
    assert not ext.present_parameters(nb, "notebooks/00_samples")
    assert json.dumps(nb) == before


def test_the_stage_globs_become_one_chapter_per_sample_in_stage_order(tmp_path):
    from sphinx_external_toc.parsing import parse_toc_yaml

    ext = _extension()
    for sample in ("foam86", "foam89"):
        for stage in ("00_samples", "01_otsu_baseline", "10_similarity"):
            page = tmp_path / "runs" / sample / "notebooks" / f"{stage}.ipynb"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text("{}")
    (tmp_path / "runs" / "_study" / "notebooks").mkdir(parents=True)
    (tmp_path / "runs" / "_study" / "notebooks" / "12_results.ipynb").write_text("{}")
    site_map = parse_toc_yaml(ROOT / "_toc.yml")
    assert ext.group_by_sample(site_map, tmp_path, [".ipynb", ".md"]) == 2
    part = next(t for t in site_map[site_map.root.docname].subtrees if t.caption.startswith("The samples"))
    assert [str(i) for i in part.items] == ["runs/foam86/notebooks/00_samples", "runs/foam89/notebooks/00_samples"]
    chapter = site_map["runs/foam89/notebooks/00_samples"]
    assert chapter.title == "Sample foam89"
    assert [str(i) for i in chapter.subtrees[0].items] == ["runs/foam89/notebooks/01_otsu_baseline",
                                                           "runs/foam89/notebooks/10_similarity"]


def test_every_module_of_foamlib_has_an_api_page_in_the_toc():
    import foamlib

    modules = {m.name for m in pkgutil.iter_modules(foamlib.__path__) if not m.name.startswith("_")}
    pages = {p.stem.removeprefix("foamlib_") for p in (ROOT / "book" / "api").glob("foamlib_*.rst")}
    assert modules == pages, f"API pages missing: {sorted(modules - pages)}; pages of no module: {sorted(pages - modules)}"
    for module in modules:
        assert f".. automodule:: foamlib.{module}\n" in (ROOT / "book" / "api" / f"foamlib_{module}.rst").read_text()
    toc = json.dumps(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert "book/api/foamlib_*" in toc and "book/api/index" in toc
    index = (ROOT / "book" / "api" / "index.md").read_text()
    assert all(f"   foamlib.{m}\n" in index for m in modules)


def test_the_api_index_groups_every_module_by_stage_and_is_current():
    tool = load_script("tools/make_api_pages.py")
    modules = tool.public_modules()
    # one group per part of the method, every module in exactly one (the tool refuses otherwise)
    assert (ROOT / "book" / "api" / "index.md").read_text() == tool.index_text(modules), \
        "book/api/index.md is stale: run python tools/make_api_pages.py"
    assert [title for title, _, _ in tool.GROUPS][1:4] == [
        "Step 1: synthetic structures and their images", "The U-Net and segmentation", "Step 2: GAN, walls and CycleGAN"]
    with pytest.raises(SystemExit, match=r"modules in no group \['newmodule'\]"):
        tool.index_text([*modules, "newmodule"])


# --------------------------------------------------------------------------- slow: build the book from a smoke run


class _Text(html.parser.HTMLParser):
    """The visible text of a page (no scripts or styles), and the classes of its output blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.classes: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        self.classes.extend((dict(attrs).get("class") or "").split())

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _problems(page: Path, machine_paths: list[str], *, api: bool) -> list[str]:
    raw = page.read_text(encoding="utf-8")
    parser = _Text()
    parser.feed(raw)
    text = " ".join(parser.parts)
    found = [f"machine path {p!r}" for p in machine_paths if p in raw]
    found += [f"absolute path {m.group(0)!r}" for m in re.finditer(r"(?<![\w.:/~-])/(?:home|root|tmp|work)/[^\s'\"<]*", text)]
    found += ["PosixPath repr" for _ in re.finditer(r"(?:Posix|Windows)Path\(", text)]
    found += ["traceback" for _ in re.finditer(r"Traceback \(most recent call last\)", text)]
    found += ["stderr output" for c in parser.classes if c == "stderr"]
    found += ["widget output" for _ in re.finditer(r"application/vnd\.jupyter\.widget", raw)]
    if not api:  # an API page may name a warning class that a function handles
        found += [f"warning text {m.group(0)!r}" for m in re.finditer(r"\w*Warning\b[^\n]{0,60}", text)]
    return found


@pytest.mark.slow
def test_the_book_built_from_a_smoke_run_has_no_stray_outputs_paths_or_warnings(tmp_path, smoke_study):
    """Several minutes: the build, from the shared smoke study of one sample (conftest.smoke_study)."""
    src = smoke_study.runs.parent  # the book's sources go beside the study's runs/, as in the project
    for name in BOOK_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)

    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    build = subprocess.run([str(jupyter_book), "build", str(src), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True, env=env, timeout=1200)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-4000:]
    assert not re.search(r"WARNING|ERROR", log), "\n".join(l for l in log.splitlines() if re.search("WARNING|ERROR", l))

    html_dir = src / "_build" / "html"
    pages = [p for p in html_dir.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts]
    stage_pages = [p for p in pages if "runs" in p.relative_to(html_dir).parts]
    from foamlib.study import find_stages

    assert len(stage_pages) == len(find_stages(ROOT / "notebooks")), sorted(p.name for p in stage_pages)
    machine_paths = sorted({str(tmp_path), str(ROOT), str(Path.home()), os.path.realpath(tmp_path), str(smoke_study.root),
                            os.path.realpath(smoke_study.root)})
    problems = {}
    for page in pages:
        rel = page.relative_to(html_dir)
        found = _problems(page, machine_paths, api=rel.parts[:2] == ("book", "api"))
        if found:
            problems[str(rel)] = sorted(set(found))
    assert not problems, json.dumps(problems, indent=1)

    # figures carry captions but no book-wide number that could be read as the paper's
    otsu = (html_dir / "runs" / "foam89" / "notebooks" / "01_otsu_baseline.html").read_text(encoding="utf-8")
    assert "<figcaption>" in otsu and "caption-number" not in otsu
    # Previous/Next follows the sample: its Otsu page comes after its samples page, not another sample's
    first = (html_dir / "runs" / "foam89" / "notebooks" / "00_samples.html").read_text(encoding="utf-8")
    assert re.search(r'class="right-next"\s+href="01_otsu_baseline.html"', first)
    api = (html_dir / "book" / "api" / "foamlib_fid.html").read_text(encoding="utf-8")
    assert 'id="foamlib.fid.fid"' in api or 'id="foamlib.fid.frechet_distance"' in api


# --------------------------------------------------------------------------- fast: the tables' helpers


def test_format_number_prints_whole_numbers_without_decimals_and_others_with_four_digits():
    from foamlib.tables import format_number

    assert [format_number(x) for x in (60.0, 0.0, -0.0, 32, 0.869156, 93.244399, 0.8902, 1234.5678)] == [
        "60", "0", "0", "32", "0.8692", "93.24", "0.8902", "1235"]
    assert format_number(123456.789) == "123456.8" and format_number(1.5e-6) == "1.5e-06"
    assert format_number(float("nan")) == "nan"


def test_use_book_tables_formats_a_dataframes_html():
    import pandas as pd

    from foamlib.tables import use_book_tables

    frame = pd.DataFrame({"seconds": [60.0, 2.0], "porosity": [0.869156, 0.5], "set": ["real", "step 1"],
                          "p": [1e-30, float("nan")]})
    with pd.option_context("display.float_format", None, "styler.format.formatter", None,
                           "styler.format.na_rep", None):  # restored afterwards
        use_book_tables()
        page = frame._repr_html_()
        styled = frame.style.format("{:.1%}", subset=["porosity"]).to_html()
    assert "<td>60</td>" in page and "<td>0.8692</td>" in page and "000000" not in page
    assert ">60</td>" in styled and ">86.9%</td>" in styled and ">step 1</td>" in styled and "000000" not in styled
    assert ">1e-30</td>" in styled and ">–</td>" in styled


def test_library_notes_turn_log_warnings_into_one_table_with_counts_and_no_stderr(monkeypatch, capsys):
    import logging

    from foamlib import tables

    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    log = logging.getLogger("foamlib.fake")
    with tables.library_notes(title="notes") as messages:
        log.warning("box is short")
        log.warning("box is short")
        log.info("not collected")
        log.warning("cache at %s/x", Path.home())
        log.warning("no network (<urlopen error>)")
    assert messages == ["box is short", "box is short", "cache at ~/x", "no network (<urlopen error>)"]
    assert capsys.readouterr().err == ""
    table = shown[0].data
    assert table.to_dict("list") == {"message": ["box is short", "cache at ~/x", "no network (<urlopen error>)"],
                                     "times": [2, 1, 1]}
    page = shown[0].to_html()
    assert "notes" in page and "(&lt;urlopen error&gt;)" in page  # shown, not taken for a tag
    with tables.library_notes():
        pass
    assert len(shown) == 1  # nothing to report: no table
    assert logging.getLogger("foamlib").propagate and not logging.getLogger("foamlib").handlers
