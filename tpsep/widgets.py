"""Interactive ipywidgets panels for the notebooks.

Each panel is a plain object holding its controls, an ``update()`` that
recomputes and redraws, and the numbers it last drew (so tests and curious
students can read them). Displaying a panel shows the widgets; in JupyterLab
every control change redraws at once. Nothing here prints: output goes to
``ipywidgets.Output`` areas, which keeps notebook outputs reproducible.
"""

from __future__ import annotations

import numpy as np


class Panel:
    """Base of the panels: shows ``self.widget`` and a short, stable text form."""

    widget = None

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = self.describe()  # the default repr embeds every output, images included
        return bundle

    def describe(self) -> str:
        return type(self).__name__


def _draw(output, figure) -> None:
    """Replace what ``output`` shows with ``figure``, and free the figure."""
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    with output:
        clear_output(wait=True)
        display(figure)
    plt.close(figure)


class SpectrogramExplorer(Panel):
    """Explore the STFT of a signal: n_fft, hop, window, dB range and frequency scale.

    Args:
        audio: ``(samples,)``, ``(channels, samples)`` (mixed to mono) or a torch tensor.
        rate: sample rate in Hz.
        title: shown above the plot.

    Attributes after each :meth:`update`:
        spectrogram_db: the dB image drawn, ``(freq, frames)``.
        resolution: dict with ``n_fft``, ``hop``, ``bins``, ``frames``,
            ``frequency_step_hz`` and ``time_step_ms``.
    """

    N_FFTS = (128, 256, 512, 1024, 2048, 4096)
    WINDOWS = ("hann", "hamming", "blackman", "rectangular")
    SCALES = ("linear", "log", "mel")

    def __init__(self, audio, rate: int, title: str = "", n_fft: int = 1024, hop_fraction: float = 0.25,
                 window: str = "hann", db_range: int = 80, scale: str = "linear"):
        import ipywidgets as w

        if hasattr(audio, "detach"):
            audio = audio.detach().cpu().numpy()
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=0)
        if audio.ndim != 1:
            raise ValueError(f"SpectrogramExplorer expects (samples,) or (channels, samples), got {audio.shape}")
        if not np.isfinite(audio).all():
            raise ValueError("SpectrogramExplorer: the audio contains NaN or Inf")
        if len(audio) < max(self.N_FFTS):
            raise ValueError(f"SpectrogramExplorer needs at least {max(self.N_FFTS)} samples, got {len(audio)}")
        self.audio, self.rate, self.title = audio, rate, title
        style = {"description_width": "initial"}
        self.n_fft = w.Dropdown(options=self.N_FFTS, value=n_fft, description="n_fft", style=style)
        self.hop_fraction = w.Dropdown(options=[("n_fft/2", 0.5), ("n_fft/4", 0.25), ("n_fft/8", 0.125),
                                                ("3·n_fft/4", 0.75)],
                                       value=hop_fraction, description="hop", style=style)
        self.window = w.Dropdown(options=self.WINDOWS, value=window, description="window", style=style)
        self.db_range = w.IntSlider(value=db_range, min=20, max=120, step=10, description="dB range",
                                    style=style, continuous_update=False)
        self.scale = w.ToggleButtons(options=self.SCALES, value=scale, description="frequency axis",
                                     style=style)
        self.info = w.HTML()
        self.plot = w.Output()
        self.sound = w.Output()
        controls = [self.n_fft, self.hop_fraction, self.window, self.db_range, self.scale]
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([w.HBox(controls[:3]), w.HBox(controls[3:]), self.info, self.plot, self.sound])
        from IPython.display import display

        from tpsep.audio import player
        with self.sound:
            display(player(audio, rate))
        self.update()

    def compute(self) -> np.ndarray:
        """The spectrogram in dB for the current settings, ``(freq, frames)``."""
        import librosa

        from tpsep.spectral import magnitude, stft, to_db

        n_fft = self.n_fft.value
        hop = max(1, int(n_fft * self.hop_fraction.value))
        power = magnitude(stft(self.audio, n_fft=n_fft, hop=hop, window=self.window.value)).numpy()
        if self.scale.value == "mel":
            mel = librosa.filters.mel(sr=self.rate, n_fft=n_fft, n_mels=min(128, n_fft // 4))
            power = np.sqrt(mel @ power**2)
        self.resolution = {"n_fft": n_fft, "hop": hop, "bins": power.shape[0], "frames": power.shape[1],
                           "frequency_step_hz": self.rate / n_fft, "time_step_ms": 1000 * hop / self.rate}
        return to_db(power, top_db=self.db_range.value).numpy()

    def update(self) -> None:
        import matplotlib.pyplot as plt

        self.spectrogram_db = self.compute()
        r = self.resolution
        self.info.value = (f"{r['bins']} bins × {r['frames']} frames · frequency step "
                           f"{r['frequency_step_hz']:.1f} Hz · time step {r['time_step_ms']:.1f} ms")
        figure, ax = plt.subplots(figsize=(9, 3.2))
        duration = len(self.audio) / self.rate
        nyquist = self.rate / 2
        if self.scale.value == "mel":
            extent, ylabel = (0, duration, 0, r["bins"]), "mel band"
        else:
            extent, ylabel = (0, duration, 0, nyquist), "frequency (Hz)"
        image = ax.imshow(self.spectrogram_db, origin="lower", aspect="auto", extent=extent, cmap="magma")
        if self.scale.value == "log":
            ax.set_yscale("symlog", linthresh=100)
            ax.set_ylim(20, nyquist)
        ax.set(xlabel="time (s)", ylabel=ylabel, title=self.title or "spectrogram")
        figure.colorbar(image, ax=ax, label="dB")
        figure.tight_layout()
        _draw(self.plot, figure)

    def describe(self) -> str:
        r = self.resolution
        return (f"SpectrogramExplorer(n_fft={r['n_fft']}, hop={r['hop']}, window={self.window.value!r}, "
                f"{r['bins']} bins x {r['frames']} frames)")


# ---- MaskExplorer (notebook 02) ----
