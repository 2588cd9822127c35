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


def setup_notebook(seed: int = 0, dpi: int = 100) -> None:
    """Prepare a notebook: seed everything, and draw figures as JPEG at ``dpi``.

    Spectrograms are noise-like images that PNG barely compresses; as JPEG a
    figure weighs a tenth as much, which keeps the solution notebooks (stored
    with their outputs) small.
    """
    seed_everything(seed)
    import matplotlib
    import music21

    # Imported in a notebook, music21 starts a one-second timer that switches every
    # figure to 'retina' PNG (four times the pixels); the data module imports it.
    timer = getattr(music21.ipython21, "t", None)
    if timer is not None:
        timer.cancel()

    matplotlib.rcParams["figure.dpi"] = dpi
    matplotlib.rcParams["savefig.dpi"] = dpi
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # outside Jupyter there is nothing to set
        return
    set_matplotlib_formats("jpeg", pil_kwargs={"quality": 90})
