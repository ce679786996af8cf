"""The public names of vistoolbox and their modules, listed once: the package imports each on first use
(lazy_loader reads this stub), and type checkers read it as the package's interface."""
from ._version import __version__
from .actmax import MaximizeResult, dream, maximize, maximize_layer
from .attribution import CamResult, cam
from .errors import VisError, VisRuntimeError, VisUsageError
from .export import export_site
from .features import (Box, FeatureExtractor, Field, LayerInfo, Layout, batch_views, layer_field, layer_layout,
                       layer_table, trace_geometry, unit_box, unit_views)
from .images import load_tensor, montage, open_image, save_png, to_pil, to_tensor
from .mining import merge_runs, mine
from .models import LoadedModel, Preprocessing, load_model, resolve_device, torchvision_names
from .result import ImageResult
from .rundir import Run, TrainingLog, open_run, read_training_log
from .style import StyleLoss, StyleResult, synthesize_texture, transfer_style
from .style.generator import GeneratorConfig, StyleGenerator
from .style.stylizer import Stylizer, generate_texture, load_stylizer, save_stylizer, stylize, stylize_files
from .style.train_stylizer import train_stylizer
from .style.decoder import load_decoder
from .style.train_decoder import train_decoder
from .style.universal import adain, wct
from .style.universal_transfer import universal_transfer
from .training import Watcher, train, watch

__all__ = [
    "__version__",
    # models, features, geometry
    "Box", "FeatureExtractor", "Field", "LayerInfo", "Layout", "LoadedModel", "Preprocessing", "layer_field",
    "layer_layout", "layer_table", "load_model", "resolve_device", "torchvision_names", "trace_geometry", "unit_box",
    # errors, images, results, runs
    "ImageResult", "Run", "VisError", "VisRuntimeError", "VisUsageError", "load_tensor", "montage", "open_image",
    "export_site", "open_run", "save_png", "to_pil", "to_tensor",
    # top-k mining and views
    "batch_views", "merge_runs", "mine", "unit_views",
    # class-activation maps and the units behind them
    "CamResult", "cam",
    # activation maximization
    "MaximizeResult", "dream", "maximize", "maximize_layer",
    # texture synthesis and style transfer
    "StyleLoss", "StyleResult", "synthesize_texture", "transfer_style",
    # feed-forward stylizer
    "GeneratorConfig", "StyleGenerator", "Stylizer", "generate_texture", "load_stylizer", "save_stylizer",
    "stylize", "stylize_files", "train_stylizer",
    # training analytics: watch a network learn, the offline classifier
    "TrainingLog", "Watcher", "read_training_log", "train", "watch",
    # universal style transfer
    "adain", "load_decoder", "train_decoder", "universal_transfer", "wct",
]
