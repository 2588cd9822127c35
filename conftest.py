"""pytest configuration shared by the unit tests and the notebook runs (nbval).

Notebook kernels inherit this process's environment. Progress bars are
disabled there because their text (rates, elapsed times) and their very
presence (a cold or warm data cache) change from run to run, and nbval
compares every output of the solution notebooks.
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")
