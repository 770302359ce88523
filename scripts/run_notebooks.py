"""Execute the notebooks and keep their outputs (drum grids, audio players, tables) to look at.

    python scripts/run_notebooks.py [--mode fast|cpu|full|auto] [--out build/notebooks]
                                    [--only 03 05] [--set STEPS=2000] [--html]

``make notebooks`` runs this. ``jupyter execute`` throws the outputs away; this writes each
executed notebook, outputs included, to ``OUT/NAME.ipynb`` (open it in JupyterLab, VS Code or on
GitHub) and, with ``--html`` (needs nbconvert: ``pip install -e '.[notebooks]'``), an
``OUT/NAME.html`` beside it. The notebooks run in file order on the ``python3`` kernel, sharing one
``MUSICVAE_WORK_DIR`` (default ``OUT/work``), so 04 samples from the model 03 trained. The mode is
passed as ``MUSICVAE_NOTEBOOK_MODE`` (see a notebook's first cell); ``--set NAME=VALUE`` appends
``NAME = VALUE`` to every notebook's parameters cell (a Python expression, as papermill does).

Prints one ``NAME_seconds=…`` line per notebook, then ``total_seconds=…``. A failing cell stops
the run with its error; the notebook is still written, up to the failed cell.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 3 * 3600  # a full-mode training cell may run for hours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default=os.environ.get("MUSICVAE_NOTEBOOK_MODE", "cpu"), choices=("fast", "cpu", "full", "auto"))
    parser.add_argument("--out", type=Path, default=REPO / "build" / "notebooks")
    parser.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 03 05")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--html", action="store_true", help="also write NAME.html (needs nbconvert)")
    args = parser.parse_args()

    import nbclient
    import nbformat

    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if any(p.name.startswith(prefix) for prefix in args.only)]
    if not notebooks:
        print("error: no notebook matches --only", file=sys.stderr)
        return 1
    for item in args.sets:
        if "=" not in item:
            print(f"error: --set takes NAME=VALUE, got {item!r}", file=sys.stderr)
            return 1
    if args.html and importlib.util.find_spec("nbconvert") is None:
        print("error: --html needs nbconvert: pip install -e '.[notebooks]'", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["MUSICVAE_NOTEBOOK_MODE"] = args.mode
    os.environ.pop("MUSICVAE_FAST", None)  # the mode decides
    os.environ.setdefault("MUSICVAE_WORK_DIR", str((args.out / "work").resolve()))
    injected = "".join(f"\n{name.strip()} = {value.strip()}  # --set" for name, value in (s.split("=", 1) for s in args.sets))

    total = time.perf_counter()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if injected:
            first = next(cell for cell in nb.cells if cell.cell_type == "code")
            first.source += injected
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(args.out.resolve())}}
        )
        started = time.perf_counter()
        try:
            client.execute()
        finally:
            target = args.out / path.name
            nbformat.write(nb, target)
            if args.html:
                from nbconvert import HTMLExporter

                body, _ = HTMLExporter().from_notebook_node(nb)
                target.with_suffix(".html").write_text(body, encoding="utf-8")
            print(f"{path.stem}_seconds={time.perf_counter() - started:.1f}", flush=True)
    print(f"total_seconds={time.perf_counter() - total:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
