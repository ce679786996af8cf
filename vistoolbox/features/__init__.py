"""The shared features level every pipeline stands on: the feature extractor (hooks that stop the
forward pass early), receptive-field geometry for any graph (through attention and other token
mixing), the layout of every layer's output, the layer table, and the deconv/backprop/guided views
of one unit."""
from .extractor import FeatureExtractor
from .layers import LayerInfo, layer_field, layer_layout, layer_table
from .layout import Layout
from .receptive import Box, Field, field_of, trace_geometry, unit_box
from .views import MODES, batch_views, unit_views

__all__ = ["Box", "FeatureExtractor", "Field", "LayerInfo", "Layout", "MODES", "batch_views", "field_of",
           "layer_field", "layer_layout", "layer_table", "trace_geometry", "unit_box", "unit_views"]
