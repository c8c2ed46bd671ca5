from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


def _load_bench(name: str) -> ModuleType:
    """bench/NAME.py as a module (bench/ is scripts, not a package), registered in sys.modules under a
    test-only name so the dataclasses it defines can find their module."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_bench() -> Callable[[str], ModuleType]:
    """`load_bench("val_compare")`: a bench script loaded as a module, once per test session."""
    loaded: dict[str, ModuleType] = {}

    def load(name: str) -> ModuleType:
        if name not in loaded:
            loaded[name] = _load_bench(name)
        return loaded[name]

    return load
