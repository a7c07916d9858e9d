"""The project's scripts (benchmarks, tools, the book's extension) loaded as modules for the tests."""
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str) -> ModuleType:
    """Execute ``ROOT/path`` as a module named after its file, without adding it to ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
