"""Static checks of the numbered notebooks: a papermill ``parameters`` cell with the shared
parameters, no committed outputs, and no hard-coded paths (they run from any working directory)."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = ("scale", "seed", "device")


def _nb(path):
    return json.loads(path.read_text())


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(path):
    cells = [c for c in _nb(path)["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    assert cells[0]["cell_type"] == "code"
    src = _source(cells[0])
    for name in REQUIRED:
        assert f"\n{name} =" in "\n" + src, f"{path.name}: parameters cell lacks {name!r}"
    assert 'scale = "smoke"' in src, f"{path.name}: the default scale must be smoke (quick to open and run)"
    assert "path" in src or "corpus" in src or "data" in src, f"{path.name}: no path parameter"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_committed(path):
    nb = _nb(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: strip them (make strip-notebooks)"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_and_portable_paths(path):
    nb = _nb(path)
    assert nb["metadata"].get("kernelspec", {}).get("name"), f"{path.name}: no kernelspec (papermill needs one)"
    code = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "code")
    assert "/work/" not in code and "/home/" not in code, f"{path.name}: hard-coded absolute path"
