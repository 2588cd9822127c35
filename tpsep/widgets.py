"""Interactive ipywidgets panels for the notebooks.

Each panel is a plain object holding its controls, an ``update()`` that
recomputes and redraws, and the numbers it last drew (so tests and curious
students can read them). Displaying a panel shows the widgets; in JupyterLab
every control change redraws at once. Nothing here prints: output goes to
``ipywidgets.Output`` areas, which keeps notebook outputs reproducible.
"""

from __future__ import annotations

import numpy as np

from tpsep.audio import player, to_mono


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


def _display_data(display_object) -> dict:
    """``display_object`` as one notebook output: the mime bundle IPython would display.

    The running shell's formatter (the same one ``display()`` uses) turns, say, an
    ``Image`` into ``{"image/jpeg": ..., "text/plain": ...}``; outside a kernel
    (tests) a plain shell is created, and nothing is printed either way.
    """
    from IPython.core.interactiveshell import InteractiveShell

    data, metadata = InteractiveShell.instance().display_formatter.format(display_object)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def _show_in(output, display_object) -> None:
    """Make ``output`` show only ``display_object``, in one step.

    Each assignment to ``output.outputs`` is one message to the browser. Clearing
    first and appending afterwards would be two, and the browser can paint the empty
    output in between: the plot blinks and everything below it jumps up and back.
    Replacing the whole tuple at once leaves no empty frame.
    """
    output.outputs = (_display_data(display_object),)


def _wrapping_row(children):
    """A row of controls that wraps onto more lines when the notebook is narrow.

    A plain ``HBox`` squeezes its children instead: at a 1024-px browser window with
    the file browser open, the sliders were squeezed down to their handles.
    """
    import ipywidgets as w

    return w.HBox(children, layout=w.Layout(flex_flow="row wrap", align_items="center"))


def _slider_layout():
    """Width of every slider: the track stays long enough to drag (``min_width``),
    and a row too narrow for two sliders wraps rather than shrinking them."""
    import ipywidgets as w

    return w.Layout(width="420px", min_width="320px")


# The sliders' labels get one fixed width, so that wrapped sliders line up.
_SLIDER_STYLE = {"description_width": "150px"}


def _figure_image(figure):
    """A matplotlib figure as an ``IPython.display.Image`` (JPEG), the figure closed."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", dpi=figure.dpi, pil_kwargs={"quality": 90})
    plt.close(figure)
    return Image(data=buffer.getvalue(), format="jpeg")


class SpectrogramExplorer(Panel):
    """Explore the STFT of a signal: n_fft, hop, window, dB range and frequency scale.

    Args:
        audio: ``(samples,)``, ``(channels, samples)`` (mixed to mono) or a torch tensor.
        rate: sample rate in Hz.
        title: shown above the plot.

    Attributes after each :meth:`update`:
        spectrogram_db: the dB image drawn, ``(freq, frames)``.
        resolution: dict with ``n_fft``, ``hop``, ``bins``, ``frames``,
            ``frequency_step_hz`` (the STFT's bin spacing) and ``time_step_ms``; in mel
            mode also ``mel_centres_hz``, the centre frequency of each mel band (row).
        info: an HTML line that says what the rows and columns of the image are.
    """

    N_FFTS = (128, 256, 512, 1024, 2048, 4096)
    WINDOWS = ("hann", "hamming", "blackman", "rectangular")
    SCALES = ("linear", "log", "mel")

    def __init__(self, audio, rate: int, title: str = "", n_fft: int = 1024, hop_fraction: float = 0.25,
                 window: str = "hann", db_range: int = 80, scale: str = "linear"):
        import ipywidgets as w

        audio = to_mono(audio, "SpectrogramExplorer")
        if len(audio) < max(self.N_FFTS):
            raise ValueError(f"SpectrogramExplorer needs at least {max(self.N_FFTS)} samples, got {len(audio)}")
        self.audio, self.rate, self.title = audio, rate, title
        style = {"description_width": "initial"}  # the label as wide as its text
        # The default dropdown is 300 px wide: three in a row would not fit a narrow notebook.
        dropdown_layout = w.Layout(width="190px", min_width="160px")
        self.n_fft = w.Dropdown(options=self.N_FFTS, value=n_fft, description="n_fft", style=style,
                                layout=dropdown_layout)
        self.hop_fraction = w.Dropdown(options=[("n_fft/2", 0.5), ("n_fft/4", 0.25), ("n_fft/8", 0.125),
                                                ("3·n_fft/4", 0.75)],
                                       value=hop_fraction, description="hop", style=style,
                                       layout=dropdown_layout)
        self.window = w.Dropdown(options=self.WINDOWS, value=window, description="window", style=style,
                                 layout=dropdown_layout)
        self.db_range = w.IntSlider(value=db_range, min=20, max=120, step=10, description="dB range",
                                    style=_SLIDER_STYLE, layout=_slider_layout(), continuous_update=False)
        self.scale = w.ToggleButtons(options=self.SCALES, value=scale, description="frequency axis",
                                     style=style)
        self.info = w.HTML()
        self.plot = w.Output()
        self.sound = w.Output()
        controls = [self.n_fft, self.hop_fraction, self.window, self.db_range, self.scale]
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([_wrapping_row(controls[:3]), _wrapping_row(controls[3:]), self.info, self.plot,
                              self.sound])
        _show_in(self.sound, player(audio, rate))
        self.update()

    def compute(self) -> np.ndarray:
        """The spectrogram in dB for the current settings, ``(freq, frames)``."""
        import librosa

        from tpsep.spectral import magnitude, stft, to_db

        n_fft = self.n_fft.value
        hop = max(1, int(n_fft * self.hop_fraction.value))
        power = magnitude(stft(self.audio, n_fft=n_fft, hop=hop, window=self.window.value)).numpy()
        self.resolution = {"n_fft": n_fft, "hop": hop, "frequency_step_hz": self.rate / n_fft,
                           "time_step_ms": 1000 * hop / self.rate}
        if self.scale.value == "mel":
            n_mels, lowest, highest = min(128, n_fft // 4), 0.0, self.rate / 2
            mel = librosa.filters.mel(sr=self.rate, n_fft=n_fft, n_mels=n_mels, fmin=lowest, fmax=highest)
            power = np.sqrt(mel @ power**2)
            # librosa spaces n_mels + 2 points evenly in mel between fmin and fmax: each band's
            # triangle rises from one point, peaks at the next, falls to the one after.
            band_edges = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=lowest, fmax=highest)
            self.resolution["mel_centres_hz"] = band_edges[1:-1]
        self.resolution.update(bins=power.shape[0], frames=power.shape[1])
        return to_db(power, top_db=self.db_range.value).numpy()

    def update(self) -> None:
        import matplotlib.pyplot as plt

        self.spectrogram_db = self.compute()
        self.info.value = self.describe_axes()
        r = self.resolution
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
        _show_in(self.plot, _figure_image(figure))

    def describe_axes(self) -> str:
        """The info line: what a row and a column of the image stand for."""
        r = self.resolution
        time_step = f"time step {r['time_step_ms']:.1f} ms"
        if "mel_centres_hz" not in r:
            # STFT rows: one bin every rate / n_fft Hz, the same step from 0 Hz up to Nyquist.
            return (f"{r['bins']} bins × {r['frames']} frames · frequency step "
                    f"{r['frequency_step_hz']:.1f} Hz · {time_step}")
        # Mel rows have no single step: the bands widen with frequency.
        spacing = np.diff(r["mel_centres_hz"])
        return (f"{r['bins']} mel bands × {r['frames']} frames · bands from 0 to {self.rate / 2:.0f} Hz, "
                f"spaced evenly in mel: about {spacing[0]:.0f} Hz apart at the bottom, "
                f"{spacing[-1]:.0f} Hz at the top · {time_step}")

    def describe(self) -> str:
        r = self.resolution
        return (f"SpectrogramExplorer(n_fft={r['n_fft']}, hop={r['hop']}, window={self.window.value!r}, "
                f"{r['bins']} bins x {r['frames']} frames)")


# ---- MaskExplorer (notebook 02) ----


class MaskExplorer(Panel):
    """Try the oracle masks on a mixture: pick the mask and its exponent or threshold, see the
    mask, the masked spectrogram and the scores change, and listen to the result.

    Args:
        mixture: ``(samples,)`` or ``(channels, samples)`` (mixed to mono), numpy or torch.
        target: the true target source, same shape (the oracle needs it).
        rate: sample rate in Hz.
        n_fft, hop: STFT parameters.
        kind: first mask shown: "ibm", "irm", "wiener" or "mix".
        title: shown above the plot.

    Attributes after each :meth:`update`:
        mask: the mask drawn, ``(freq, frames)``.
        estimate: the masked-mixture estimate of the target, ``(samples,)``.
        scores: dict with "SI-SDR" and "SDR" (BSS Eval v3, :func:`tpsep.metrics.fast_sdr`) in dB.
    """

    KINDS = (("binary (IBM)", "ibm"), ("ratio (IRM)", "irm"), ("Wiener-like", "wiener"),
             ("none (mixture)", "mix"))

    def __init__(self, mixture, target, rate: int, n_fft: int = 1024, hop: int = 256, kind: str = "irm",
                 title: str = ""):
        import ipywidgets as w

        self.mixture = to_mono(mixture, "MaskExplorer", "mixture")
        self.target = to_mono(target, "MaskExplorer", "target")
        if self.mixture.shape != self.target.shape:
            raise ValueError(f"MaskExplorer: mixture {self.mixture.shape} and target {self.target.shape} "
                             "must have the same length")
        if not np.any(self.target):
            raise ValueError("MaskExplorer: the target is silent; pick an excerpt where it plays")
        if kind not in dict(self.KINDS).values():
            raise ValueError(f"MaskExplorer: unknown kind {kind!r}; expected one of {[k for _, k in self.KINDS]}")
        from tpsep import spectral

        self.rate, self.n_fft, self.hop, self.title = rate, n_fft, hop, title
        self.X = spectral.stft(self.mixture, n_fft=n_fft, hop=hop)
        S = spectral.stft(self.target, n_fft=n_fft, hop=hop)
        self.target_mag, self.other_mag = S.abs(), (self.X - S).abs()
        style = {"description_width": "initial"}
        self.kind = w.ToggleButtons(options=self.KINDS, value=kind, description="mask", style=style)
        self.power = w.FloatSlider(value=1.0, min=0.25, max=4.0, step=0.25, description="IRM exponent p",
                                   style=_SLIDER_STYLE, layout=_slider_layout(), continuous_update=False)
        self.threshold_db = w.FloatSlider(value=0.0, min=-20.0, max=20.0, step=1.0,
                                          description="IBM threshold (dB)", style=_SLIDER_STYLE,
                                          layout=_slider_layout(), continuous_update=False)
        self.context_frames = w.IntSlider(value=5, min=1, max=31, step=2, description="Wiener PSD frames",
                                          style=_SLIDER_STYLE, layout=_slider_layout(),
                                          continuous_update=False)
        self.info = w.HTML()
        self.plot = w.Output()
        self.sound = w.Output()
        controls = [self.kind, self.power, self.threshold_db, self.context_frames]
        for control in controls:
            control.observe(lambda change: self.update(), names="value")
        self.widget = w.VBox([self.kind, _wrapping_row(controls[1:]), self.info, self.plot, self.sound])
        self.update()

    def compute(self) -> None:
        """Mask, estimate and scores for the current settings (no drawing)."""
        import torch

        from tpsep import masks, metrics, spectral

        self.mask = masks.compute_mask(self.kind.value, self.target_mag, self.other_mag,
                                       power=self.power.value, threshold_db=self.threshold_db.value,
                                       context_frames=self.context_frames.value)
        self.masked = masks.apply_mask(self.mask, self.X)
        self.estimate = spectral.istft(self.masked, n_fft=self.n_fft, hop=self.hop,
                                       length=len(self.mixture)).numpy()
        self.scores = {
            "SI-SDR": float(metrics.si_sdr(torch.from_numpy(self.estimate), torch.from_numpy(self.target))),
            "SDR": float(metrics.fast_sdr(self.target[None, None], self.estimate[None, None])[0]),
        }

    def update(self) -> None:
        import matplotlib.pyplot as plt

        from tpsep.spectral import to_db

        kind = self.kind.value
        self.power.disabled = kind != "irm"
        self.threshold_db.disabled = kind != "ibm"
        self.context_frames.disabled = kind != "wiener"
        self.compute()
        self.info.value = (f"<b>{self.setting()}</b> · SI-SDR {self.scores['SI-SDR']:.2f} dB · "
                           f"SDR {self.scores['SDR']:.2f} dB · mean mask {float(self.mask.mean()):.2f}")
        duration, nyquist = len(self.mixture) / self.rate, self.rate / 2
        extent = (0, duration, 0, nyquist)
        reference_db = float(self.X.abs().max())
        figure, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharey=True)
        image = axes[0].imshow(self.mask.numpy(), origin="lower", aspect="auto", extent=extent,
                               cmap="viridis", vmin=0, vmax=1)
        figure.colorbar(image, ax=axes[0], label="mask")
        axes[0].set(title=f"mask: {self.setting()}", xlabel="time (s)", ylabel="frequency (Hz)")
        masked_db = to_db(self.masked.abs(), top_db=80.0, ref=reference_db).numpy()
        image = axes[1].imshow(masked_db, origin="lower", aspect="auto", extent=extent, cmap="magma",
                               vmin=-80, vmax=0)
        figure.colorbar(image, ax=axes[1], label="dB")
        axes[1].set(title="masked mixture (the estimate)", xlabel="time (s)")
        if self.title:
            figure.suptitle(self.title)
        figure.tight_layout()
        _show_in(self.plot, _figure_image(figure))
        _show_in(self.sound, player(self.estimate, self.rate))

    def setting(self) -> str:
        kind = self.kind.value
        if kind == "ibm":
            return f"IBM, threshold {self.threshold_db.value:+.0f} dB"
        if kind == "irm":
            return f"IRM, p = {self.power.value:g}"
        if kind == "wiener":
            return f"Wiener-like, PSD over {self.context_frames.value} frames"
        return "no mask (the mixture)"

    def describe(self) -> str:
        return (f"MaskExplorer({self.setting()}: SI-SDR {self.scores['SI-SDR']:.2f} dB, "
                f"SDR {self.scores['SDR']:.2f} dB)")
