"""Activation maximization: the image a unit "wants" (Yosinski et al. 2015; Olah et al. 2017).

Modules, in pipeline order: :mod:`.fourier` (spectra and the colour latent), :mod:`.spectrum`
(MACO's natural magnitude spectrum), :mod:`.params` (image parameterizations), :mod:`.transforms`
(transformation robustness), :mod:`.objectives` (what to maximise, composable),
:mod:`.regularizers` (Yosinski's pixel priors), :mod:`.presets` (named settings, coarse-to-fine
schedules), :mod:`.render` (the loops), :mod:`.quality` (plausibility), :mod:`.result` (images +
record, saving), :mod:`.api` (entry points), :mod:`.accentuate` (feature accentuation).
"""
import lazy_loader as _lazy

# importing the package imports none of its modules (`vis --help` starts without torch); the names are in
# __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
