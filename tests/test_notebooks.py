"""Static checks of the numbered notebooks: a papermill ``parameters`` cell with the shared
parameters, no committed outputs, no hard-coded paths (they run from any working directory),
artefacts written under figures/ or runs/ (``figures_dir`` / ``runs_dir``), the bundled model in
the notebooks that show one, training through ``diffroll.corpus.segments``, and notebook glue that the
package never imports. (nbval runs them: ``pytest --nbval-lax notebooks/*.ipynb``.)"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = ("scale", "seed", "device")
BUNDLED_MODEL = ("02_diffusion_tour", "04_evaluate", "07_trajectory", "08_generation", "09_inpainting")
TRAINING = ("03_train", "05_ablations", "06_pretraining")


def _nb(path):
    return json.loads(path.read_text())


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code(path) -> str:
    return "\n".join(_source(c) for c in _nb(path)["cells"] if c["cell_type"] == "code")


def _named(names):
    return [p for p in NOTEBOOKS if p.stem in names]


def test_there_are_notebooks():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert numbers[:9] == [f"{i:02d}" for i in range(1, 10)] and len(set(numbers)) == len(numbers)


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
    assert all(re.match(r"^(#.*|\w+ = .*|\s+.*|)$", line) for line in src.splitlines()), \
        f"{path.name}: the parameters cell should only assign parameters"


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
    code = _code(path)
    assert "/work/" not in code and "/home/" not in code, f"{path.name}: hard-coded absolute path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_artefacts_go_to_figures_or_runs(path):
    """Files are written under ``figures_dir(scale)`` (figures/, or runs/smoke/figures at smoke
    scale) or ``runs_dir``, never to a path spelled out in the notebook."""
    code = _code(path)
    assert "figures_dir(scale)" in code, f"{path.name}: no figures_dir(scale)"
    assert not re.search(r"""["'](\.\./)?(figures|runs|data)/""", code), f"{path.name}: a hard-coded output path"
    assert not re.search(r"""savefig\(\s*["']""", code), f"{path.name}: savefig to a literal path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_use_public_names(path):
    assert not re.search(r"\b(ex|data|viz|experiments)\._\w", _code(path)), f"{path.name}: uses a private name"


@pytest.mark.parametrize("path", _named(BUNDLED_MODEL), ids=lambda p: p.name)
def test_model_notebooks_show_the_bundled_model(path):
    """At every scale these notebooks load a checkpoint (the bundled model by default) through
    the pipeline, and never train a stand-in."""
    code = _code(path)
    assert "Pipeline.from_checkpoint(checkpoint" in code, f"{path.name}: does not load the bundled pipeline"
    assert 'checkpoint = None' in code
    assert "train_run(" not in code and "Trainer(" not in code, f"{path.name}: trains its own model"


@pytest.mark.parametrize("path", _named(TRAINING), ids=lambda p: p.name)
def test_training_notebooks_read_segments_through_data(path):
    code = _code(path)
    assert re.search(r"\b(data\.)?(training_data|segment_dataset|roll_dataset)\(", code), \
        f"{path.name}: trains without diffroll.corpus.segments's segment datasets"


def test_package_never_imports_notebook_glue():
    for module in (ROOT / "diffroll").glob("*.py"):
        if module.name == "experiments.py":
            continue
        assert not re.search(r"^\s*(from\s+(\.|diffroll\.?)\s*import\s+.*\bexperiments\b|from\s+\.?experiments\b|"
                             r"import\s+diffroll\.experiments)", module.read_text(), re.M), \
            f"{module.name} imports diffroll.lab.experiments (notebook glue)"
