"""Every notebook in notebooks/ runs top to bottom in FAST mode without an error.

The notebooks run in file order in one shared temporary working directory (so 04 samples from the
model that 03 trained, as a user's would), on the ``python3`` kernel of the interpreter running
the tests, with ``MUSICVAE_FAST=1``. They need the Groove MIDI Dataset (``$MUSICVAE_GMD_DIR``).
Stored notebooks must carry no outputs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module", autouse=True)
def this_python_kernel(tmp_path_factory):
    """Make ``python3`` mean this interpreter (the venv's): a kernelspec on $JUPYTER_PATH, which
    Jupyter searches before the user's own kernelspecs (~/.local/share/jupyter)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    patch = pytest.MonkeyPatch()
    patch.setenv("JUPYTER_PATH", str(root))
    yield
    patch.undo()


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()  # raises CellExecutionError (with the traceback) on the first failing cell
    return nb


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, gmd_dir):
    """The notebooks' shared working directory, with the environment their kernels inherit."""
    path = tmp_path_factory.mktemp("notebooks")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUSICVAE_FAST", "1")
    patch.setenv("MUSICVAE_GMD_DIR", str(Path(gmd_dir).resolve()))  # the kernels run elsewhere
    patch.setenv("MUSICVAE_CACHE_DIR", str(path / "cache"))  # windows built here, not in ~/.cache
    patch.setenv("MUSICVAE_WORK_DIR", str(path))  # data/, runs/ and outputs/ of the notebooks
    patch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
    # One thread: the tiny FAST-mode networks gain nothing from more, and on a busy machine
    # torch's spinning worker threads can slow a step down tenfold.
    patch.setenv("OMP_NUM_THREADS", "1")
    yield path
    patch.undo()


def test_there_are_numbered_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names and all(name[:2].isdigit() and name[2] == "_" for name in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), f"clear the outputs of {path.name}"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []) and 'os.environ.get("MUSICVAE_FAST") == "1"' in first.source
    assert 'os.environ.get("MUSICVAE_NOTEBOOK_MODE")' in first.source  # fast | cpu | full | auto
    # Colab-only code runs only behind the detection; nothing else mentions Colab or Drive.
    for cell in code:
        if "google.colab import" in cell.source:
            assert 'IN_COLAB = "google.colab" in sys.modules' in cell.source or "if IN_COLAB" in cell.source


def test_kernel_is_this_interpreter(tmp_path):
    """The ``python3`` kernel nbclient starts is the Python running the tests (the venv's)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    printed = nb.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, workdir):
    started = time.perf_counter()
    nb = execute(path, workdir)
    errors = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.get("output_type") == "error"
    ]
    assert not errors
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
