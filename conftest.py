"""Test-session settings shared by the tests and the notebook kernels they start."""

import os
import tempfile
from pathlib import Path

# A notebook executed by a test without a results file records here, never in a published
# report nor in the repository's scratch folder (the runner passes its own results file).
os.environ.setdefault(
    "EVALKIT_RESULTS_FILE", str(Path(tempfile.mkdtemp(prefix="evalkit-test-")) / "results.json")
)
# Pseudonym keys are made and read in a throw-away configuration folder, never the user's
# own (~/.config/evalkit); kernels started by the tests inherit it.
os.environ.setdefault("EVALKIT_CONFIG_DIR", tempfile.mkdtemp(prefix="evalkit-config-"))
# Figures are drawn off screen in tests and in the kernels they start.
os.environ.setdefault("MPLBACKEND", "Agg")
