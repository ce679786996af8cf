"""Texture synthesis and style transfer (Gatys et al.) on the shared feature extractor.

* :mod:`.stats`    style statistics: Gram matrix, per-channel mean+std, histogram (quantiles)
* :mod:`.losses`   :class:`StyleLoss` — content + style + TV terms from one extractor pass
* :mod:`.color`    colour control: luminance-only transfer, colour histogram matching
* :mod:`.optimize` the optimisation loop: L-BFGS/Adam over the pixels, coarse-to-fine stages
* :mod:`.transfer` :func:`transfer_style`, :func:`synthesize_texture`, :class:`StyleResult`, outputs
* :mod:`.generator`, :mod:`.stylizer`, :mod:`.train_stylizer` the feed-forward stylizer
"""
from .losses import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, StyleLoss, total_variation, with_pooling
from .stats import Gram, Histogram, MeanStd, Statistic, get_statistic, gram, mean_std
from .transfer import StyleResult, synthesize_texture, transfer_style

__all__ = ["DEFAULT_CONTENT_LAYER", "DEFAULT_STYLE_LAYERS", "Gram", "Histogram", "MeanStd", "Statistic",
           "StyleLoss", "StyleResult", "get_statistic", "gram", "mean_std", "synthesize_texture",
           "total_variation", "transfer_style", "with_pooling"]
