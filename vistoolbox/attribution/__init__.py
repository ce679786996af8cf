"""Attribution: class-activation maps (the CAM family) on the shared feature extractor, and the units
behind every map. ``cam(model, image, layer, target=, method=)`` is the entry point."""
from .api import cam
from .methods import METHODS
from .result import CamResult
from .targets import Target, parse_target

__all__ = ["METHODS", "CamResult", "Target", "cam", "parse_target"]
