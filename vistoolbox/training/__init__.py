"""Training analytics (ReVACNN, Chung et al.): watch a network learn in any training loop, and
``vis train``'s offline classifier.

Modules: :mod:`.stats` (per-unit statistics of a probe batch), :mod:`.watch` (the watcher: hooks,
schedule, log), :mod:`.data` (Fashion-MNIST and ImageFolder splits), :mod:`.train` (the training
loop of ``vis train``: checkpoints, resume). The log and checkpoint paths are
:mod:`vistoolbox.rundir`'s.
"""
import lazy_loader as _lazy

# importing the package imports none of its modules (`vis --help` starts without torch); the names are in
# __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
