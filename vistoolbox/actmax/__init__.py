"""Activation maximization: the image a unit "wants" (Yosinski et al. 2015; Olah et al. 2017).

Modules, in pipeline order: :mod:`.params` (image parameterizations), :mod:`.transforms`
(transformation robustness), :mod:`.objectives` (what to maximise, composable),
:mod:`.regularizers` (Yosinski's pixel priors), :mod:`.presets` (named settings),
:mod:`.render` (the loops), :mod:`.result` (images + record, saving), :mod:`.api` (entry points).
"""
from .api import dream, maximize, maximize_layer, parse_target, parse_units
from .objectives import Channel, DeepDream, Diversity, Neuron, Objective
from .presets import PRESETS, Settings, settings_for
from .render import measure
from .result import MaximizeResult

__all__ = ["Channel", "DeepDream", "Diversity", "MaximizeResult", "Neuron", "Objective", "PRESETS",
           "Settings", "dream", "maximize", "maximize_layer", "measure", "parse_target", "parse_units",
           "settings_for"]
