"""vistoolbox: a CNN visualization toolbox for any torch model.

Public API (everything else is internal)::

    from vistoolbox import load_model, FeatureExtractor, layer_table, unit_box
    model = load_model("vgg16", "hed")           # offline ImageNet-derived VGG16
    with FeatureExtractor(model, ["conv5_3"]) as fx:
        feats = fx(model.preprocessing.normalize(images))
"""
from .errors import VisError, VisRuntimeError, VisUsageError
from .extractor import FeatureExtractor
from .images import load_tensor, montage, open_image, save_png, to_pil, to_tensor
from .layers import LayerInfo, layer_field, layer_table
from .models import LoadedModel, Preprocessing, load_model, resolve_device, torchvision_names
from .receptive import Box, Field, trace_geometry, unit_box
from .store import Run, open_run
from .style import StyleLoss, synthesize_texture, transfer_style
from .style.generator import GeneratorConfig, StyleGenerator
from .style.stylizer import Stylizer, generate_texture, load_stylizer, save_stylizer, stylize, stylize_files
from .style.train_stylizer import train_stylizer

__version__ = "0.1.0"

__all__ = [
    "Box", "FeatureExtractor", "Field", "LayerInfo", "LoadedModel", "Preprocessing", "VisError",
    "VisRuntimeError", "VisUsageError", "layer_field", "layer_table", "load_model", "resolve_device",
    "torchvision_names", "trace_geometry", "unit_box", "Run", "open_run", "load_tensor", "montage",
    "open_image", "save_png", "to_pil", "to_tensor",
    "StyleLoss", "synthesize_texture", "transfer_style",
    # feed-forward stylizer (issue 8)
    "GeneratorConfig", "StyleGenerator", "Stylizer", "generate_texture", "load_stylizer", "save_stylizer",
    "stylize", "stylize_files", "train_stylizer",
]
