"""Model zoo: a name plus a weight source → an eval-mode module, its preprocessing and its layer catalogue.

``load_model("vgg16", "hed")`` is the offline default. Any torchvision classification model name
works, and so does a user model given as ``package.module:callable`` or ``path/to/file.py:callable``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
import torchvision
from torch import nn

if TYPE_CHECKING:
    from PIL import Image

from . import weights as wsrc
from .errors import VisRuntimeError, VisUsageError, unknown
from .images import resize_center_crop
from .limits import side
from .small_cnn import SMALL_CNN, SMALL_CNN_MEAN, SMALL_CNN_STD, SmallCNN

__all__ = ["FC_ALIASES", "IMAGENET_MEAN", "IMAGENET_STD", "LoadedModel", "Preprocessing", "as_model",
           "build_module", "check_run_model", "class_names", "default_preprocessing", "is_code", "load_model", "model_names",
           "resolve_device", "top_classes", "torchvision_names"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FC_ALIASES = ("fc6", "relu6", "fc7", "relu7", "fc8")


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its input: RGB in 0–1, then ``(x − mean) / std`` per channel.

    Caffe-style models (the ``hed`` VGG16: 0–255 minus the Caffe mean) are expressed exactly with
    ``mean = caffe_mean / 255`` and ``std = 1 / 255``.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    resize_size: int = 256
    channels: int = 3
    description: str = "RGB 0–1, ImageNet mean/std"

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """0–1 RGB image batch ``[N, 3, H, W]`` → model input."""
        mean = torch.tensor(self.mean, device=image.device, dtype=image.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=image.device, dtype=image.dtype).view(1, -1, 1, 1)
        return (image - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input → 0–1 RGB (not clamped)."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return x * std + mean

    def model_crop(self, image: "Image.Image") -> "Image.Image":
        """A PIL image resized and centre-cropped to the model's input (torchvision's recipe)."""
        return resize_center_crop(image, self.resize_size, self.input_size)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "input_size": self.input_size,
                "resize_size": self.resize_size, "channels": self.channels, "description": self.description}


HED_PREPROCESSING = Preprocessing(
    mean=tuple(m / 255.0 for m in wsrc.CAFFE_MEAN_RGB),  # type: ignore[arg-type]
    std=(1 / 255.0,) * 3,  # type: ignore[arg-type]
    description="RGB 0–255 minus the Caffe mean (122.68, 116.67, 104.01); Caffe-trained VGG16",
)


@dataclass
class LoadedModel:
    """An eval-mode, frozen model with what the toolbox needs to know about it."""

    name: str
    weights: str
    module: nn.Module
    preprocessing: Preprocessing
    weights_sha256: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> canonical module path
    missing_aliases: dict[str, str] = field(default_factory=dict)  # alias -> why it is absent
    has_classifier: bool = True
    layouts: dict[str, str] = field(default_factory=dict)  # canonical name -> layout override (CHW, NC:1+14x14…)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)  # traced geometry by input size
    seed: int | None = None  # the seed of `random` weights (None: other weights, or not known)

    @property
    def fixed_size(self) -> int | None:
        """The one input size the model accepts (a torchvision ViT's ``image_size``), else None."""
        size = getattr(self.module, "image_size", None)
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    @property
    def device(self) -> torch.device:
        param = next(self.module.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    def layer_names(self) -> list[str]:
        """Canonical names of every named module except the root, in definition order."""
        return [name for name, _ in self.module.named_modules() if name]

    def aliases_of(self, name: str) -> list[str]:
        """Aliases that point at canonical `name`."""
        return [alias for alias, target in self.aliases.items() if target == name]

    def resolve(self, layer: str) -> str:
        """Canonical module path for a name or alias; unknown names raise with the valid ones."""
        names = self.layer_names()
        if layer in self.aliases:
            return self.aliases[layer]
        if layer in names:
            return layer
        if layer in self.missing_aliases:
            raise VisUsageError(self.missing_aliases[layer])
        raise unknown("layer", layer, list(self.aliases) + names)

    def submodule(self, layer: str) -> nn.Module:
        return self.module.get_submodule(self.resolve(layer))

    def layers_of_type(self, *types: type) -> list[str]:
        """Canonical names of the leaf modules of the given types (e.g. ``nn.Conv2d``)."""
        return [n for n, m in self.module.named_modules() if n and isinstance(m, types)]

    def describe(self) -> dict:
        """Identity for records: model, weights id and sha256, preprocessing."""
        return {"model": self.name, "weights": self.weights, "weights_sha256": self.weights_sha256,
                "preprocessing": self.preprocessing.to_dict()}


# --------------------------------------------------------------------------- layer aliases
def _caffe_aliases(module: nn.Module) -> dict[str, str]:
    """Caffe-tradition aliases for AlexNet/VGG-shaped models (``features`` + ``classifier``)."""
    aliases: dict[str, str] = {}
    features = getattr(module, "features", None)
    if isinstance(features, nn.Sequential):
        convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        # VGG: several convs per block between pools; AlexNet: a conv per "block".
        bounds = [-1] + pools
        per_block = [sum(a < c < b for c in convs) for a, b in zip(bounds, bounds[1:])]
        vgg_like = bool(per_block) and min(per_block) >= 2  # AlexNet's first block has one conv
        block, conv_in_block, conv_total, last_conv = 1, 0, 0, None
        for index, layer in enumerate(features):
            path = f"features.{index}"
            if isinstance(layer, nn.Conv2d):
                conv_in_block += 1
                conv_total += 1
                last_conv = f"{block}_{conv_in_block}" if vgg_like else str(conv_total)
                aliases[f"conv{last_conv}"] = path
                if vgg_like:
                    aliases[f"conv{block}"] = path
            elif isinstance(layer, nn.BatchNorm2d) and last_conv:
                aliases[f"bn{last_conv}"] = path
            elif isinstance(layer, nn.ReLU) and last_conv:
                aliases[f"relu{last_conv}"] = path
            elif isinstance(layer, nn.MaxPool2d):
                aliases[f"pool{block if vgg_like else conv_total}"] = path
                block += 1
                conv_in_block = 0
    classifier = getattr(module, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(features, nn.Sequential):
        number = 5
        for index, layer in enumerate(classifier):
            if isinstance(layer, nn.Linear):
                number += 1
                aliases[f"fc{number}"] = f"classifier.{index}"
            elif isinstance(layer, nn.ReLU) and number > 5:
                aliases[f"relu{number}"] = f"classifier.{index}"
    return aliases


# --------------------------------------------------------------------------- construction
def torchvision_names() -> list[str]:
    """torchvision's classification model names."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def model_names() -> list[str]:
    """Every model name `load_model` knows: the package's own (``smallcnn``), then torchvision's."""
    return [SMALL_CNN, *torchvision_names()]


def build_module(name: str, *, seed: int = 0, num_classes: int | None = None,
                 input_size: int | None = None) -> nn.Module:
    """A freshly initialised, trainable module (train mode, seeded): ``smallcnn``, a torchvision model
    name or model code (`num_classes` replaces the classifier's size; model code is built as it is)."""
    torch.manual_seed(seed)
    if is_code(name):
        return _user_model(name)
    if name == SMALL_CNN:
        return SmallCNN(num_classes or 10)
    if name not in torchvision_names():
        raise unknown("model", name, model_names())
    kwargs: dict[str, Any] = ({"aux_logits": False, "init_weights": True}
                              if name in ("googlenet", "inception_v3") else {})
    if _is_vit(name) and input_size:
        kwargs["image_size"] = _vit_size(name, input_size)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _state_classes(weights: str) -> int | None:
    """The class count of a ``smallcnn`` weights file (its ``fc`` rows), None for ``random``."""
    if weights == "random":
        return None
    fc = wsrc.read_state_file(weights).get("fc.weight")
    return int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None


def is_code(name: str) -> bool:
    """True for a model given as code (``package.module:callable`` or ``path/file.py:callable``):
    building it imports that code and runs it."""
    return ":" in name


def check_run_model(name: str, trusted: Sequence[str] = (), trust_run_code: bool = False,
                    where: str = "the run") -> None:
    """Refuse to rebuild a model that a run names as code, unless the user named the same spec
    (`trusted`: the specs given by the user, e.g. on the command line) or opted in with
    `trust_run_code`. A run directory is data: opening one never imports the code it names."""
    if is_code(name) and not trust_run_code and name not in trusted:
        raise VisUsageError(f"{where} was made with model code {name!r}, and vistoolbox never imports code "
                            f"that a run names: give `model` {name} yourself if you trust that code (or "
                            "`trust_run_code`)")


def _user_model(spec: str) -> nn.Module:
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target or "\\" in target:
            path = Path(target)
            if not path.is_file():
                raise VisUsageError(f"model file {target!r} does not exist")
            mod_name = f"_vis_user_model_{abs(hash(str(path.resolve())))}"
            spec_obj = importlib.util.spec_from_file_location(mod_name, path)
            assert spec_obj is not None and spec_obj.loader is not None
            mod = importlib.util.module_from_spec(spec_obj)
            sys.modules[mod_name] = mod
            spec_obj.loader.exec_module(mod)
        else:
            mod = importlib.import_module(target)
    except VisUsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        raise VisUsageError(f"cannot import model {spec!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise VisUsageError(f"{target!r} has no callable {attr!r}")
    try:
        built = factory()
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise VisUsageError(f"model {spec!r} failed while building: {type(exc).__name__}: {reason}") from None
    if not isinstance(built, nn.Module):
        raise VisUsageError(f"{spec!r} returned {type(built).__name__}, not an nn.Module")
    return built


def default_preprocessing(name: str, input_size: int | None = None) -> Preprocessing:
    """The input a freshly built model of `name` takes: ``smallcnn`` 28 px with Fashion-MNIST's
    mean/std, torchvision models their ImageNet recipe (299 px for inception)."""
    if name == SMALL_CNN:
        size = input_size or 28
        return Preprocessing(SMALL_CNN_MEAN, SMALL_CNN_STD, size, size,
                             description="RGB 0–1 (grey as 3 equal channels), Fashion-MNIST mean/std")
    return _preprocessing_for(name, input_size)


def _preprocessing_for(name: str, input_size: int | None) -> Preprocessing:
    size = input_size or (299 if name.startswith("inception") else 224)
    return Preprocessing(input_size=size, resize_size=round(size * 256 / 224))


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VisUsageError("`device` cuda requested but no CUDA device is available; use cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise VisUsageError(f"unknown device {device!r}; valid: auto, cpu, cuda")
    return torch.device(device)


def load_model(name: str = "vgg16", weights: str = "hed", *, device: str | torch.device = "cpu",
               seed: int = 0, input_size: int | None = None, quiet: bool = False,
               layouts: Mapping[str, str] | None = None) -> LoadedModel:
    """Build `name` with `weights` (``imagenet``, ``random``, ``hed`` for vgg16, or a state_dict path).

    The module is put in eval mode on `device` with frozen parameters and out-of-place ReLUs.
    `layouts` overrides the layout of some layers (name or alias → ``CHW``, ``HWC``, ``C`` or
    ``NC:[P+]RxQ``; see :mod:`vistoolbox.features.layout`) where the traced one is wrong or missing.
    A torchvision ViT is built for `input_size` (its position embedding interpolated for ``imagenet``).

    >>> m = load_model("alexnet", "random", seed=0)
    >>> m.resolve("conv4")
    'features.8'
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if input_size is not None:
        input_size = side(input_size, "input_size")
    is_user = ":" in name
    if not is_user and name not in model_names():
        raise unknown("model", name, model_names())
    sha: str | None = None
    preprocessing = _preprocessing_for(name, input_size)
    has_classifier = True
    missing: dict[str, str] = {}
    if weights == "hed":
        if name != "vgg16":
            raise VisUsageError(f"`weights` hed exists only for vgg16, not {name!r}; "
                                "valid: imagenet, random, or a state_dict path")
        state, sha = wsrc.hed_state_dict(quiet=quiet)
        features = torchvision.models.vgg16(weights=None).features
        features.load_state_dict(state, strict=True)
        module: nn.Module = nn.Sequential(OrderedDict(features=features))
        preprocessing = HED_PREPROCESSING if input_size is None else Preprocessing(
            **{**HED_PREPROCESSING.__dict__, "input_size": input_size,
               "resize_size": round(input_size * 256 / 224)})
        has_classifier = False
        missing = {a: f"layer {a!r} is a classifier layer and the hed VGG16 has conv layers only; "
                      "use `weights` imagenet for fc6..fc8" for a in FC_ALIASES}
    elif weights == "imagenet":
        if name == SMALL_CNN:
            raise VisUsageError("`weights` imagenet is for torchvision models; give smallcnn a checkpoint of "
                                "`vis train` (RUN/checkpoints/epoch_003.pt) or random")
        if is_user:
            raise VisUsageError("`weights` imagenet is for torchvision models; give a user model a "
                                "state_dict path or random")
        try:
            enum = torchvision.models.get_model_weights(name).DEFAULT
            module = torchvision.models.get_model(name, weights=enum)
            if input_size and _is_vit(name) and input_size != module.image_size:
                module = _resized_vit(name, module, input_size)
        except VisUsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - network/hub errors vary
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VisRuntimeError(
                f"cannot get torchvision's imagenet weights for {name} ({reason[:160]}); offline "
                "alternatives: `weights` hed (vgg16), random, or a state_dict path") from None
        transforms = enum.transforms()
        size = input_size or int(transforms.crop_size[0])
        preprocessing = Preprocessing(tuple(transforms.mean), tuple(transforms.std), size,  # type: ignore[arg-type]
                                      int(transforms.resize_size[0]) if input_size is None
                                      else round(size * 256 / 224))
        sha = None
    else:
        classes = _state_classes(weights) if name == SMALL_CNN else None
        module = build_module(name, seed=seed, num_classes=classes, input_size=input_size)
        if name == SMALL_CNN:
            preprocessing = default_preprocessing(name, input_size)
        if weights != "random":
            sha = wsrc.load_state_file(module, weights)
    if name in ("alexnet",) or name.startswith("vgg"):
        aliases = _caffe_aliases(module)
    else:
        aliases = {}
    for m in module.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False  # hooked values must not be overwritten by a later in-place op
    module.eval().requires_grad_(False).to(dev)
    model = LoadedModel(name=name, weights=weights, module=module, preprocessing=preprocessing,
                        weights_sha256=sha, aliases=aliases, missing_aliases=missing,
                        has_classifier=has_classifier and _has_linear(module),
                        seed=seed if weights == "random" else None)
    model.layouts = {model.resolve(layer): str(spec).strip() for layer, spec in (layouts or {}).items()}
    return model


def _is_vit(name: str) -> bool:
    return name.startswith("vit_")


def _vit_size(name: str, size: int) -> int:
    """A torchvision ViT's image size must be a multiple of its patch size (``vit_b_16``: 16)."""
    patch = int(name.rsplit("_", 1)[-1])
    if size % patch:
        raise VisUsageError(f"{name} takes input sizes that are multiples of {patch}; `input_size` is {size}")
    return size


def _resized_vit(name: str, module: nn.Module, size: int) -> nn.Module:
    """The same ViT for another input size: its position embedding interpolated (bicubic, as
    torchvision does for fine-tuning at another resolution)."""
    from torchvision.models.vision_transformer import interpolate_embeddings

    resized = torchvision.models.get_model(name, weights=None, image_size=_vit_size(name, size))
    state = interpolate_embeddings(size, module.patch_size, module.state_dict())
    resized.load_state_dict(state)
    return resized


def top_classes(model: LoadedModel, x: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    """The `k` most probable classes of the full model for the first image of the normalised batch `x`
    (names from torchvision's weights metadata where known, else ``class i``)."""
    logits = model.module(x)
    probs = torch.softmax(logits.flatten(1).float(), dim=1)[0]
    values, indices = probs.topk(min(k, probs.numel()))
    names = class_names(model)
    return [(names[i] if names and i < len(names) else f"class {i}", float(v))
            for v, i in zip(values.tolist(), indices.tolist())]


def class_names(model: LoadedModel) -> list[str] | None:
    """ImageNet category names for torchvision models with ``imagenet`` weights, else None."""
    if model.weights != "imagenet":
        return None
    try:
        return list(torchvision.models.get_model_weights(model.name).DEFAULT.meta["categories"])
    except (ValueError, KeyError, AttributeError):
        return None


def as_model(model: "LoadedModel | str") -> LoadedModel:
    """A :class:`LoadedModel` as given, or a model name loaded with the default weights."""
    return load_model(model) if isinstance(model, str) else model


def _has_linear(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Linear) for m in module.modules())


def iter_leaves(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Named leaf modules (no children)."""
    for name, sub in module.named_modules():
        if name and not any(True for _ in sub.children()):
            yield name, sub
