"""tpsep: the library behind the audio source separation lab course.

Each module has one job (see the course map in README.md): ``audio`` reads and
plays sound, ``spectral`` holds the STFT and the 512-bin convention, ``masks``
and ``metrics`` do oracle separation and scoring, ``data`` serves the embedded
and real datasets, ``models`` holds one file per network, ``train`` trains
them, and ``exercises``/``course`` turn the course sources into notebooks.
"""

import random

import numpy as np

__version__ = "0.1.0"


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so that a notebook prints the same numbers on a re-run."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # the data tools run without torch
        return
    torch.manual_seed(seed)
