"""``vis train`` as a user runs it: it learns (checked by the test's own evaluation of the saved
checkpoint on Fashion-MNIST read with numpy), it resumes bit-identically after kill -9, bad input is one
line and exit 2 with nothing damaged, and the idx reader against hand-written files."""
from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vistoolbox import VisUsageError
from vistoolbox.small_cnn import SMALL_CNN_MEAN, SMALL_CNN_STD, SmallCNN
from vistoolbox.training.data import FASHION_ROOT, read_idx

ROOT = Path(FASHION_ROOT)
needs_fashion = pytest.mark.skipif(not (ROOT / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="Debian's dataset-fashion-mnist is not installed "
                                          "(apt install dataset-fashion-mnist)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def vis(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vistoolbox.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "fashion-mnist", "--out", str(out), "--quiet", "--every", "10", *extra]


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fashion_test(limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `limit` test images and labels, read with gzip and numpy (idx: 16/8-byte headers)."""
    with gzip.open(ROOT / "t10k-images-idx3-ubyte.gz") as fh:
        pixels = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:limit]
    with gzip.open(ROOT / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(), np.uint8, offset=8)[:limit]
    x = torch.from_numpy(pixels.astype(np.float32) / 255).unsqueeze(1).expand(-1, 3, -1, -1)
    mean, std = torch.tensor(SMALL_CNN_MEAN).view(1, 3, 1, 1), torch.tensor(SMALL_CNN_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.from_numpy(labels.astype(np.int64))


def accuracy_of(checkpoint: Path, limit: int) -> float:
    model = SmallCNN(10)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    model.eval()
    x, y = fashion_test(limit)
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


@needs_fashion
def test_train_learns_a_slice_and_logs_the_accuracy_the_checkpoint_has(tmp_path):
    from vistoolbox import read_training_log

    out = tmp_path / "run"
    proc = vis(*train_args(out, "--limit", "2000", "--epochs", "1"))
    assert proc.returncode == 0, proc.stderr
    checkpoint = out / "checkpoints" / "epoch_001.pt"
    assert proc.stdout.strip() == str(checkpoint)
    logged = read_training_log(out).epochs()[-1]["test_accuracy"]
    mine = accuracy_of(checkpoint, 2000)
    assert mine > 0.5  # chance is 0.1
    assert logged == pytest.approx(mine, abs=1e-9)


@pytest.mark.slow
@needs_fashion
def test_kill_9_then_rerun_resumes_to_the_uninterrupted_weights(tmp_path):
    args = ("--limit", "1000", "--epochs", "2", "--seed", "3")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert vis(*train_args(whole, *args)).returncode == 0
    child = subprocess.Popen([sys.executable, "-m", "vistoolbox.cli", *train_args(cut, *args)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = cut / "checkpoints" / "epoch_001.pt"
    deadline = time.monotonic() + 120
    while not first.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert first.is_file() and not (cut / "checkpoints" / "epoch_002.pt").exists()  # killed in epoch 2
    proc = vis(*train_args(cut, *args))
    assert proc.returncode == 0, proc.stderr
    a = torch.load(whole / "checkpoints" / "epoch_002.pt", weights_only=True)
    b = torch.load(cut / "checkpoints" / "epoch_002.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["accuracies"] == b["accuracies"] and a["step"] == b["step"]


def test_folder_without_classes_is_one_line(tmp_path):
    from vistoolbox.images import save_png

    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(3):
        save_png(torch.rand(1, 3, 8, 8), folder / f"{i}.png")
    proc = vis("train", "--dataset", str(folder), "--out", str(tmp_path / "run"))
    assert "class folder" in one_line(proc)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_fashion_mnist_names_the_package(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = vis(*train_args(tmp_path / "run"), env={**ENV, "VISTOOLBOX_FASHION_MNIST": str(empty)})
    assert "dataset-fashion-mnist" in one_line(proc)
    assert not (tmp_path / "run").exists()


def misfit_checkpoint(path: Path) -> None:
    state = SmallCNN(10).state_dict()
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)


def test_a_checkpoint_that_does_not_fit_is_one_line_and_untouched(tmp_path):
    bad = tmp_path / "bad.pt"
    misfit_checkpoint(bad)
    before = sha(bad)
    proc = vis("layers", "--model", "smallcnn", "--weights", str(bad))
    assert "do not fit the model" in one_line(proc) and "conv1.weight" in proc.stderr
    assert sha(bad) == before


@needs_fashion
def test_resuming_from_a_checkpoint_that_does_not_fit_is_a_usage_error_and_untouched(tmp_path):
    from vistoolbox.training import train

    out = tmp_path / "run"
    train(out, limit=200, epochs=1, every=10, quiet=True)
    checkpoint = out / "checkpoints" / "epoch_001.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["model"]["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, checkpoint)
    log = out / "training" / "log.jsonl"
    before = (sha(checkpoint), sha(log))
    with pytest.raises(VisUsageError, match="do not fit the model") as caught:
        train(out, limit=200, epochs=2, every=10, quiet=True)
    assert "\n" not in str(caught.value)
    assert (sha(checkpoint), sha(log)) == before and not (out / "checkpoints" / "epoch_002.pt").exists()


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">i", d) for d in dims) + payload


def test_read_idx_against_hand_written_files(tmp_path):
    plain = tmp_path / "u8.idx"
    plain.write_bytes(idx_bytes(0x08, (2, 3), bytes([1, 2, 3, 250, 251, 252])))
    assert read_idx(plain).tolist() == [[1, 2, 3], [250, 251, 252]]
    packed = tmp_path / "i16.idx.gz"
    packed.write_bytes(gzip.compress(idx_bytes(0x0B, (3,), struct.pack(">3h", -2, 300, 7))))
    got = read_idx(packed)
    assert got.tolist() == [-2, 300, 7] and got.dtype.itemsize == 2
    floats = tmp_path / "f32.idx"
    floats.write_bytes(idx_bytes(0x0D, (1, 2), struct.pack(">2f", 0.5, -1.25)))
    assert read_idx(floats).tolist() == [[0.5, -1.25]]
    short = tmp_path / "short.idx"
    short.write_bytes(idx_bytes(0x08, (2, 3), bytes(5)))
    with pytest.raises(VisUsageError, match="ends early"):
        read_idx(short)
    wrong = tmp_path / "wrong.idx"
    wrong.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(VisUsageError, match="not an idx file"):
        read_idx(wrong)
