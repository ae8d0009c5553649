"""Test-session settings shared by the unit tests and the notebooks that nbval executes."""

import os
import tempfile
from pathlib import Path

# Notebooks executed by nbval record their results here, never in a published report;
# the summary notebook, executed last, reads what the analysis notebooks recorded.
os.environ.setdefault(
    "EVALKIT_RESULTS_FILE", str(Path(tempfile.mkdtemp(prefix="evalkit-test-")) / "results.json")
)
# Pseudonym keys are made and read in a throw-away configuration folder, never the user's
# own (~/.config/evalkit); kernels started by nbval inherit it.
os.environ.setdefault("EVALKIT_CONFIG_DIR", tempfile.mkdtemp(prefix="evalkit-config-"))
# Figures are drawn off screen in tests and in kernels started by nbval.
os.environ.setdefault("MPLBACKEND", "Agg")
