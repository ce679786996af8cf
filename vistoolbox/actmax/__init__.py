"""Activation maximization: the image a unit "wants" (Yosinski et al. 2015; Olah et al. 2017).

Modules, in pipeline order: :mod:`.fourier` (spectra and the colour latent), :mod:`.spectrum`
(MACO's natural magnitude spectrum), :mod:`.params` (image parameterizations), :mod:`.transforms`
(transformation robustness), :mod:`.objectives` (what to maximise, composable),
:mod:`.regularizers` (Yosinski's pixel priors), :mod:`.presets` (named settings, coarse-to-fine
schedules), :mod:`.render` (the loops), :mod:`.quality` (plausibility), :mod:`.result` (images +
record, saving), :mod:`.api` (entry points), :mod:`.accentuate` (feature accentuation).
"""
from .accentuate import accentuate, topk_seeds
from .api import dream, maximize, maximize_layer, parse_target, parse_units
from .objectives import Channel, DeepDream, Diversity, Neuron, Objective
from .presets import DEFAULT_PRESET, PRESETS, Settings, settings_for
from .quality import Judge, default_judge
from .render import measure
from .result import MaximizeResult
from .spectrum import natural_spectrum

__all__ = ["Channel", "DEFAULT_PRESET", "DeepDream", "Diversity", "Judge", "MaximizeResult", "Neuron", "Objective",
           "PRESETS", "Settings", "accentuate", "default_judge", "dream", "maximize", "maximize_layer", "measure",
           "natural_spectrum", "parse_target", "parse_units", "settings_for", "topk_seeds"]
