"""vistoolbox: see what the units of a convolutional network respond to, on any torch model.

Four views on one feature extractor — activations with receptive fields, top-k dataset patches,
activation maximization, texture synthesis and style transfer. The public API (everything else is
internal)::

    from vistoolbox import load_model, FeatureExtractor, mine, maximize, transfer_style
    model = load_model("vgg16", "hed")           # offline ImageNet-derived VGG16
    with FeatureExtractor(model, ["conv5_3"]) as fx:
        feats = fx(model.preprocessing.normalize(images))

Every entry point takes the model first: ``mine(model, dataset, out)``, ``maximize(model, "conv4:12")``,
``transfer_style(model, content, styles)``, ``train_stylizer(model, style, dataset)``.
"""
import lazy_loader as _lazy

# importing the package imports none of its modules (`vis --help` starts without torch); the names are in
# __init__.pyi
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
