"""Benchmark: `evalkit run params/demo.yaml` against the floor papermill itself sets.

The floor is papermill executing the same number of notebooks, from one process, each of
which only imports the kit's dependencies (kernel start + imports + papermill overhead).
The ratio says how much the kit's own work (intake, analyses, figures, HTML export) adds.

    python benchmarks/bench_runner.py [params/demo.yaml]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm

from evaluation.params import NOTEBOOKS, load_params

IMPORTS = """\
import numpy, pandas, scipy.stats, statsmodels.api, matplotlib.pyplot, seaborn
import pandera.pandas, yaml, pydantic, openpyxl, holidays
import evaluation
"""


def floor(n_notebooks: int) -> float:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(IMPORTS)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "imports.ipynb"
        nbformat.write(nb, str(src))
        start = time.perf_counter()
        for i in range(n_notebooks):
            pm.execute_notebook(str(src), str(Path(tmp) / f"out{i}.ipynb"),
                                kernel_name="python3", progress_bar=False)
        return time.perf_counter() - start


def main() -> None:
    params_file = Path(sys.argv[1] if len(sys.argv) > 1 else "params/demo.yaml")
    # notebooks, not analyses: the survey and audit analyses share one notebook, run once
    n = len(dict.fromkeys(NOTEBOOKS[a] for a in load_params(params_file).enabled))
    start = time.perf_counter()
    # the console script installed beside this interpreter (works without activating a venv)
    evalkit = shutil.which("evalkit") or str(Path(sys.executable).parent / "evalkit")
    subprocess.run([evalkit, "run", str(params_file)], check=True, stdout=subprocess.DEVNULL)
    kit = time.perf_counter() - start
    base = floor(n)
    print(f"evalkit run {params_file}: {kit:.1f} s for {n} notebooks")
    print(f"floor (papermill, {n} notebooks importing the dependencies): {base:.1f} s")
    print(f"ratio: {kit / base:.2f}")


if __name__ == "__main__":
    main()
