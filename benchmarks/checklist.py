"""The end of a benchmark that checks its figures: one line per check, the figures as JSON, the exit status.

Imported by the benchmark scripts beside it (``python benchmarks/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def report_checks(checks: Mapping[str, bool], figures: Mapping[str, Any], json_path: Path | None) -> int:
    """Print ``ok`` or ``FAILED`` before each check, write ``figures`` to ``json_path`` (if given); 0 if all passed, else 1."""
    for name, ok in checks.items():
        print(f"{'ok    ' if ok else 'FAILED'} {name}")
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))
    return 0 if all(checks.values()) else 1
