"""The public names of vistoolbox.actmax and their modules, listed once: the package imports each on first use
(lazy_loader reads this stub), and type checkers read it as the package's interface."""
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
