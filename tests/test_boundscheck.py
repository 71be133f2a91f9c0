"""Every kernel once under numba's bounds checking, in a subprocess with a fresh cache.

``NUMBA_BOUNDSCHECK=1`` makes any out-of-range index raise IndexError; the kernels are
compiled afresh into a temporary ``NUMBA_CACHE_DIR`` (so the checked builds neither reuse nor
pollute the normal cache). Most of the run is compilation: about 60 s on 2 cores.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_kernels_run_clean_with_numba_bounds_checking(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, str(HERE / "kernels_once.py")], env=env, cwd=str(HERE),
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout[-3000:] + p.stderr[-5000:]
