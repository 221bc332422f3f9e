from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CFG_DIR = ROOT / "cfg"
TABLES = FIXTURES / "tables"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def _on_cuda(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and str(callspec.params.get("device", "")).startswith("cuda"):
        return True
    return any("CUDA" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that runs on a CUDA device (a ``device="cuda"`` parameter, or skipped without
    one) carries the ``cuda`` marker, so ``pytest -m cuda`` (scripts/gpu_check.sh) selects them."""
    for item in items:
        if _on_cuda(item):
            item.add_marker(pytest.mark.cuda)
