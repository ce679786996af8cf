"""The ``vis`` command: parses arguments, calls the library, prints. No logic of its own."""
from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
import traceback
import warnings
from typing import Any, Callable, Iterator, Sequence

import click

from .actmax.presets import DEFAULT_PRESET, PRESETS
from .errors import VisError, VisRuntimeError, from_os_error

__all__ = ["main", "vis"]


#: Seeds: non-negative 64-bit integers (what torch's generators take).
SEED = click.IntRange(0, 2**63 - 1)


def model_options(func: Callable) -> Callable:
    """The options every command shares: --model --weights --device --seed --input-size --layout."""
    @click.option("--model", "model_name", default="vgg16", show_default=True,
                  help="torchvision model name, or package.module:callable / file.py:callable")
    @click.option("--weights", default="hed", show_default=True,
                  help="imagenet | random | hed (vgg16, offline) | path to a state_dict")
    @click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
    @click.option("--seed", default=0, show_default=True, type=SEED, help="random seed")
    @click.option("--input-size", default=None, type=int, help="model input size (default: the model's)")
    @click.option("--layout", "layouts", multiple=True, metavar="LAYER=LAYOUT",
                  help="a layer's layout where the traced one is wrong: CHW, HWC, C or NC:[P+]RxQ (repeatable)")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        click.get_current_context().meta["vis_layouts"] = parse_layouts(kwargs.pop("layouts", ()))
        return func(*args, **kwargs)
    return wrapper


def parse_layouts(items: Any) -> dict[str, str]:
    """``("blocks.3=NC:1+14x14", …)`` → ``{"blocks.3": "NC:1+14x14"}``; bad items are usage errors."""
    from .errors import VisUsageError
    from .features.layout import parse_layout

    layouts: dict[str, str] = {}
    for item in items:
        layer, sep, spec = str(item).partition("=")
        if not sep or not layer.strip():
            raise VisUsageError(f"cannot read `layouts` {item!r}; use LAYER=LAYOUT, e.g. encoder.ln=NC:1+14x14")
        try:
            layouts[layer.strip()] = str(parse_layout(spec))
        except ValueError as exc:
            raise VisUsageError(f"`layouts` {item!r}: {exc}") from None
    return layouts


def load_from_options(model_name: str, weights: str, device: str, seed: int, input_size: int | None,
                      quiet: bool = False):
    """Build the LoadedModel the shared options describe (with the command's --layout overrides)."""
    from .models import load_model

    context = click.get_current_context(silent=True)
    layouts = context.meta.get("vis_layouts", {}) if context is not None else {}
    return load_model(model_name, weights, device=device, seed=seed, input_size=input_size, quiet=quiet,
                      layouts=layouts)


class VisGroup(click.Group):
    """The ``vis`` group: a command's summary in ``vis --help`` is the whole first paragraph of its
    help (click's default cuts it at the first ". ", e.g. inside "(Johnson et al. …)")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary(command)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def summary(command: click.Command) -> str:
    """A command's one-paragraph summary: its `short_help`, else the first paragraph of its help."""
    if command.short_help:
        return command.short_help
    return " ".join((command.help or "").strip().split("\n\n")[0].split())


@click.group(cls=VisGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(package_name="vistoolbox")
def vis(debug: bool) -> None:
    """vistoolbox: see what the units of a CNN respond to."""


@vis.command()
@model_options
@click.option("--size", default=None, type=int, help="input size for shapes (default: the model's)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def layers(model_name: str, weights: str, device: str, seed: int, input_size: int | None,
           size: int | None, as_json: bool) -> None:
    """List every layer with aliases, type, layout, output shape, units and receptive field."""
    from .features.layers import layer_table

    model = load_from_options(model_name, weights, device, seed, input_size)
    rows = layer_table(model, size)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows]))
        return
    header = ("name", "aliases", "type", "layout", "shape", "units", "rf", "rf_size", "stride", "offset")
    pair = lambda v: "-" if v is None else (str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}")  # noqa: E731
    table = [(r.name, ",".join(r.aliases), r.type, r.layout or "?",
              "-" if r.shape is None else "x".join(map(str, r.shape)), "-" if r.units is None else str(r.units),
              r.rf or "-", pair(r.rf_size), pair(r.rf_stride), pair(r.rf_offset)) for r in rows]
    for line in format_table(header, table, right=5):
        click.echo(line)


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: int) -> list[str]:
    """Columns as wide as their longest cell (nothing is ever cut); columns from `right` on are
    right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).rjust(w) if i >= right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header), *(line(row) for row in rows)]


#: What `vis maximize --preset` offers (dream belongs to `vis dream`).
PRESET_NAMES = [name for name in PRESETS if name != "dream"]


def knob_options(func: Callable) -> Callable:
    """Optimisation knobs shared by maximize and dream; unset ones keep the preset's value."""
    knobs = [
        ("--steps", int, "optimisation steps"), ("--lr", float, "learning rate / step size"),
        ("--size", int, "image size in px (default: the model's input size)"),
        ("--decay", float, "L2 decay per step (pixel presets)"),
        ("--blur-radius", float, "Gaussian blur sigma (pixel presets)"),
        ("--blur-every", int, "blur every N steps (pixel presets)"),
        ("--norm-pct", float, "zero pixels below this norm percentile (pixel presets)"),
        ("--contrib-pct", float, "zero pixels below this contribution percentile (pixel presets)"),
        ("--pad", int, "transform: pad px (lucid presets)"), ("--jitter", int, "transform: jitter px (lucid presets)"),
        ("--schedule", str, "coarse-to-fine stages as size:steps fractions, e.g. 0.5:0.75,1:0.25"),
        ("--carry", click.Choice(["upsample", "tile"]), "how a stage grows: higher resolution, or a larger canvas"),
    ]
    for flag, kind, text in reversed(knobs):
        func = click.option(flag, type=kind, default=None, help=text)(func)
    return func


def _knobs(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("steps", "lr", "size", "decay", "blur_radius", "blur_every", "norm_pct", "contrib_pct", "pad", "jitter",
             "schedule", "carry")
    return {k: kwargs[k] for k in names if kwargs.get(k) is not None}


def _report(paths: list, record: dict) -> None:
    for path in paths:
        click.echo(str(path))
    init, final = record["activation_initial"], record["activation_final"]
    pairs = ", ".join(f"{a:.4g} -> {b:.4g}" for a, b in list(zip(init, final))[:8])
    click.echo(f"activation (initial -> final): {pairs}{' …' if len(init) > 8 else ''}", err=True)


def _refuse_irrelevant(rules: Sequence[tuple[bool, Sequence[str], str]]) -> None:
    """For each ``(applies, params, why)``: when `applies`, any of the invoked command's `params` the
    user gave (not left at its default) is a usage error naming the flag and `why`."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    for applies, params, why in rules:
        given = [p for p in ctx.command.params if p.name in params
                 and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)]
        if applies and given:
            raise click.UsageError(f"{given[0].opts[0]} does not apply here: {why}", ctx)


@vis.command()
@model_options
@click.option("--layer", required=False, help="layer name or alias (e.g. conv4, fc8, features.8)")
@click.option("--unit", type=int, default=None, help="one unit (channel) index")
@click.option("--units", "units_spec", default=None, help="several units in one batch: 0-63 or 1,5,9")
@click.option("--all", "all_units", is_flag=True, help="every unit of the layer(s) into --run")
@click.option("--layers", "layers_spec", default=None, help="with --all: comma-separated layers")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="with --all: run directory (RUN/layers/<name>/maximize/); else a mining run whose "
                   "top-k patches judge the image's plausibility")
@click.option("--batch", default=16, show_default=True, type=int, help="with --all: units per pass")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="where --all runs: this process, or Ray (RAY_ADDRESS, else a local cluster)")
@click.option("--neuron", default=None, is_flag=False, flag_value="centre",
              help="optimise one spatial position: the centre (bare --neuron) or Y,X")
@click.option("--negate", is_flag=True, help="minimise instead of maximise")
@click.option("--diversity", default=0.0, show_default=True, type=float,
              help="weight of the Gram-cosine diversity term across the batch")
@click.option("--preset", default=None, help=f"{' | '.join(PRESET_NAMES)} (default: {DEFAULT_PRESET}; "
              "with --from/--from-topk: accentuate)")
@knob_options
@click.option("--param", type=click.Choice(["fourier", "phase"]), default=None,
              help="lucid presets: Fourier image, or phase only under a natural magnitude spectrum (MACO)")
@click.option("--spectrum", default=None, type=click.Path(exists=True, file_okay=False),
              help="--param phase: image folder (or mining run) for the magnitude spectrum (default: the sample crops)")
@click.option("--transparency/--no-transparency", default=None,
              help="also write <out>_transparency.png, the accumulated |d objective / d image| (MACO)")
@click.option("--from", "from_image", default=None, type=click.Path(dir_okay=False),
              help="feature accentuation: start from this image and stay close to it")
@click.option("--from-topk", "from_topk", default=None, type=click.Path(file_okay=False),
              help="feature accentuation of the unit's top-k patches of this mining run (one image per patch)")
@click.option("--rank", "rank_spec", default=None, help="with --from-topk: which patches (0-8, 0,3; default all)")
@click.option("--seed-penalty", type=float, default=None, help="accentuation: weight of the distance to the seed")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="output PNG (JSON beside it)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def maximize(model_name: str, weights: str, device: str, seed: int, input_size: int | None, layer: str | None,
             unit: int | None, units_spec: str | None, all_units: bool, layers_spec: str | None,
             run_dir: str | None, batch: int, backend: str, neuron: str | None, negate: bool,
             diversity: float, preset: str | None, param: str | None, spectrum: str | None,
             transparency: bool | None, from_image: str | None, from_topk: str | None, rank_spec: str | None,
             seed_penalty: float | None, out: str | None, quiet: bool, **kwargs: Any) -> None:
    """Optimise the image that maximises a unit (or a batch of units) of a layer; with --from or
    --from-topk, accentuate the unit in real images instead."""
    from .errors import VisUsageError
    from .actmax import accentuate, api, topk_seeds

    accentuating = from_image is not None or from_topk is not None
    _refuse_irrelevant([(all_units, ("unit", "out", "rank_spec", "seed_penalty"),
                         "--all renders every unit (or --units) of --layers into --run"),
                        (not all_units, ("layers_spec", "batch", "backend"), "only with --all"),
                        (from_topk is None, ("rank_spec",), "only with --from-topk"),
                        (not accentuating, ("seed_penalty",), "only with --from or --from-topk")])
    preset = preset or ("accentuate" if accentuating else DEFAULT_PRESET)
    knobs = {**_knobs(kwargs), **{k: v for k, v in (("param", param), ("spectrum", spectrum),
                                                    ("transparency", transparency), ("seed_penalty", seed_penalty))
                                  if v is not None}}
    api.settings_for(preset, **knobs)  # fail fast on bad settings, before loading the model
    position = api.parse_neuron(neuron)
    if all_units:
        if accentuating:
            raise VisUsageError("--all renders from noise; --from/--from-topk accentuate one unit")
        layers = [l for l in (layers_spec or layer or "").split(",") if l]
        if not layers or not run_dir:
            raise VisUsageError("--all needs --layer (or --layers a,b) and --run RUN")
        model = load_from_options(model_name, weights, device, seed, input_size, quiet)
        units = api.parse_units(units_spec) if units_spec else None
        for name in layers:
            for path in api.maximize_layer(model, name, run_dir, units, batch=batch, preset=preset, seed=seed,
                                           quiet=quiet, backend=backend, neuron=position, negate=negate,
                                           diversity=diversity, **knobs):
                click.echo(str(path))
        return
    if not layer:
        raise VisUsageError("--layer is required (e.g. --layer conv4 --unit 12)")
    if (unit is None) == (units_spec is None):
        raise VisUsageError("give exactly one of --unit N or --units SPEC (or --all --run RUN)")
    chosen = [unit] if unit is not None else api.parse_units(units_spec or "")
    if accentuating:
        if from_image is not None and from_topk is not None:
            raise VisUsageError("give one of --from IMAGE or --from-topk RUN")
        if len(chosen) != 1:
            raise VisUsageError("accentuation takes one --unit")
        if from_topk is not None:
            seeds, sources = topk_seeds(from_topk, layer, chosen[0], api.parse_units(rank_spec, "rank") if rank_spec else None)
            position = position if neuron is not None else True  # a patch is the centre unit's field
        else:
            seeds, sources = from_image, None
        model = load_from_options(model_name, weights, device, seed, input_size, quiet)
        if from_topk is not None:
            from .rundir import check_network, open_run

            check_network(open_run(from_topk), model.describe(), model.seed, "accentuate its patches")
        result = accentuate(model, layer, seeds, chosen, preset=preset, neuron=position, negate=negate,
                            seed=seed, quiet=quiet, run=run_dir or from_topk, sources=sources, **knobs)
        _report(result.save(out or api.default_out("accentuate", layer, chosen, preset)), result.record)
    else:
        model = load_from_options(model_name, weights, device, seed, input_size, quiet)
        result = api.maximize(model, layer, chosen, preset=preset, neuron=position, negate=negate,
                              diversity=diversity, seed=seed, quiet=quiet, run=run_dir, **knobs)
        _report(result.save(out or api.default_out("maximize", layer, chosen, preset)), result.record)
    if result.record["interrupted"]:
        raise click.exceptions.Abort()  # the image so far is saved; exit 130


@vis.command()
@model_options
@click.argument("image", type=click.Path())
@click.option("--layer", required=True, help="layer to amplify (e.g. conv4_3)")
@click.option("--preset", default="dream", show_default=True, help="dream | yosinski1..4")
@knob_options
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="output PNG (JSON beside it)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def dream(model_name: str, weights: str, device: str, seed: int, input_size: int | None, image: str,
          layer: str, preset: str, out: str | None, quiet: bool, **kwargs: Any) -> None:
    """DeepDream: amplify what a layer sees in IMAGE."""
    from .actmax import api

    knobs = _knobs(kwargs)
    api.settings_for(preset, **knobs)
    model = load_from_options(model_name, weights, device, seed, input_size, quiet)
    result = api.dream(model, image, layer, preset=preset, seed=seed, quiet=quiet, **knobs)
    _report(result.save(out or api.default_out("dream", layer, None, preset)), result.record)
    if result.record["interrupted"]:
        raise click.exceptions.Abort()



#: The CAM methods (vistoolbox.attribution.methods.METHODS; listed here so `vis cam --help` needs no torch).
CAM_METHODS = "gradcam | gradcam++ | xgradcam | hirescam | layercam | eigencam | scorecam | ablationcam"


@vis.command()
@model_options
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--layer", required=True, help="layer whose units make the map (e.g. conv5_3, layer4, encoder.ln)")
@click.option("--target", default="top", show_default=True,
              help="class:N (logit N) | unit:LAYER:N (a unit's channel mean) | top (top-1 class, else the "
                   "deepest layer's strongest unit)")
@click.option("--method", default="gradcam", show_default=True, help=CAM_METHODS)
@click.option("--smooth", default=None, help="aug (six flipped/scaled views averaged) | eigen (first principal component)")
@click.option("--guided", is_flag=True, help="also guided Grad-CAM: OUT_guided.png and 'guided' in OUT.npz")
@click.option("--at", "at", default=None, metavar="Y,X", help="place on the map whose units are listed (default: the peak)")
@click.option("--run", "run_dir", default=None, type=click.Path(), help="mining run: each unit's top-9 montage and optimised image")
@click.option("--metrics", is_flag=True, help="Average Drop, Increase in Confidence and ROAD (class targets)")
@click.option("--batch", default=32, show_default=True, type=int, help="copies per pass for scorecam / ablationcam")
@click.option("--out", default="cam.png", show_default=True, type=click.Path(dir_okay=False),
              help="output PNG (OUT.npz and OUT.json beside it)")
def cam(model_name: str, weights: str, device: str, seed: int, input_size: int | None, images: tuple[str, ...],
        layer: str, target: str, method: str, smooth: str | None, guided: bool, at: str | None, run_dir: str | None,
        metrics: bool, batch: int, out: str) -> None:
    """Class-activation map of IMAGE(s) at a layer, and the units behind its peak (Grad-CAM and family)."""
    from .attribution import api
    from .attribution.methods import check_method
    from .attribution.targets import parse_target
    from .attribution.units import parse_at
    from .errors import VisUsageError

    check_method(method, smooth)
    parse_target(target)
    place = parse_at(at)
    model = load_from_options(model_name, weights, device, seed, input_size)
    batch_images, read, problems = api.load_images(model, images)
    if batch_images is None:
        raise VisUsageError(problems[0])
    result = api.cam(model, batch_images, layer, target=target, method=method, smooth=smooth, guided=guided,
                     at=place, run=run_dir, metrics=metrics, batch=batch, seed=seed, sources=read)
    for path in result.save(out):
        click.echo(str(path))
    for row in result.record["images"]:
        behind = row["units_behind"]
        units = ", ".join(f"{u['unit']} ({u['contribution']:.3g})" for u in behind["units"][:3]) if behind else "-"
        click.echo(f"{row['source']}: score {row['score']:.4g}, peak {row['peak']}, units behind: {units}", err=True)
    for problem in problems:  # the readable images are written; each unreadable one is reported, exit 2
        click.echo(f"vis: error: {problem}", err=True)
    if problems:
        sys.exit(2)


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    from .errors import VisUsageError

    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise VisUsageError(f"`shard` must look like i/n (e.g. 0/4), got {value!r}") from None
    return index, count


@vis.command()
@model_options
@click.option("--dataset", required=True, help="folder of images (recursive), ImageFolder tree, or text file of paths")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory to write")
@click.option("--layers", "layer_list", default=None, help="comma-separated layers/aliases (default: every conv and fc layer)")
@click.option("--k", default=9, show_default=True, type=int, help="top images kept per unit")
@click.option("--limit", default=None, type=int, help="use only the first N images")
@click.option("--resize", default=None, type=int, help="shorter side before the crop (default: the model's)")
@click.option("--crop", default=None, type=int, help="centre-crop size (default: the model's input size)")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--workers", default=0, show_default=True, type=int,
              help="DataLoader decoding processes (at most max(4, 4 x CPUs))")
@click.option("--with", "views", default=None, help="extra views of each patch: deconv,backprop,guided")
@click.option("--min-inside", default=None, type=float,
              help="share of a unit's receptive field that must lie inside the image for a position to "
                   "count (0 = every position; default 0.9)")
@click.option("--shard", default=None, help="i/n: mine only shard i of n (merge with `vis merge`)")
@click.option("--checkpoint-every", default=20, show_default=True, type=int, help="batches between checkpoints")
@click.option("--backend", default="local", show_default=True, type=click.Choice(["local", "ray"]))
@click.option("--address", default=None, help="Ray cluster address (default: start a local one)")
@click.option("--ray-tasks", default=None, type=int, help="Ray tasks to split the dataset into (default: cluster CPUs)")
@click.option("--no-patches", is_flag=True, help="write top-k and stats only")
@click.option("--overwrite", is_flag=True, help="replace a different run already in --out")
@click.option("--quiet", is_flag=True, help="no progress bars")
def mine(model_name: str, weights: str, device: str, seed: int, input_size: int | None, dataset: str, out: str,
         layer_list: str | None, k: int, limit: int | None, resize: int | None, crop: int | None,
         batch_size: int, workers: int, views: str | None, min_inside: float | None, shard: str | None,
         checkpoint_every: int, backend: str, address: str | None, ray_tasks: int | None, no_patches: bool,
         overwrite: bool, quiet: bool) -> None:
    """Top-k images and patches of every unit over a dataset (resumable)."""
    from .mining import mine as run_mine

    model = load_from_options(model_name, weights, device, seed, input_size, quiet=quiet)
    layers_arg = [name.strip() for name in layer_list.split(",") if name.strip()] if layer_list else None
    path = run_mine(model, dataset, out, layers=layers_arg, k=k, limit=limit, resize=resize, crop=crop,
                    batch_size=batch_size, workers=workers, views=views, shard=_parse_shard(shard),
                    checkpoint_every=checkpoint_every, overwrite=overwrite, patches=not no_patches,
                    backend=backend, address=address, ray_tasks=ray_tasks, seed=seed, quiet=quiet,
                    **({} if min_inside is None else {"min_inside": min_inside}))
    from .images import named
    from .rundir import open_run

    skipped = open_run(path).manifest.get("counts", {}).get("skipped_paths") or []
    if skipped and not quiet:
        click.echo(f"vis mine: skipped {named(skipped)} (unreadable)", err=True)
    click.echo(str(path))


@vis.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="merged run directory")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda (for --with views)")
@click.option("--no-patches", is_flag=True, help="write top-k and stats only")
@click.option("--overwrite", is_flag=True, help="replace an existing run in --out")
@click.option("--model", "model_name", default=None,
              help="model to rebuild for --with views (default: the shards' torchvision model; code the runs "
                   "name is never imported)")
@click.option("--trust-run-code", is_flag=True, help="import the model code the shards name (only for runs you trust)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def merge(runs: tuple[str, ...], out: str, device: str, no_patches: bool, overwrite: bool, model_name: str | None,
          trust_run_code: bool, quiet: bool) -> None:
    """Merge the shard runs of `vis mine --shard i/n` into one run (exact)."""
    from .mining import merge_runs

    click.echo(str(merge_runs(list(runs), out, device=device, patches=not no_patches, overwrite=overwrite,
                              quiet=quiet, model=model_name, trust_run_code=trust_run_code)))



def _number_list(text: str | None, option: str, kind: type = int) -> list | None:
    """``"256,512"`` → ``[256, 512]`` (``kind`` int or float); anything else is a usage error."""
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise click.BadParameter(f"expected comma-separated {what}, got {text!r}", param_hint=option) from None


def _style_options(func: Callable) -> Callable:
    """Options texture and transfer share."""
    @click.option("--statistic", type=click.Choice(["gram", "mean_std", "histogram"]), default="gram",
                  show_default=True, help="style statistic")
    @click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
    @click.option("--lr", type=float, default=None, help="step size (default: lbfgs 1, adam 0.02)")
    @click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", show_default=True)
    @click.option("--style-scale", type=float, default=1.0, show_default=True,
                  help="style image longest side = F × output longest side")
    @click.option("--max-pixels", type=int, default=None,
                  help="refuse larger optimised/style images (default 4194304 = 2048²)")
    @click.option("--snapshot-every", type=int, default=0, show_default=True,
                  help="write the current image every N steps to OUT_snapshots/")
    @click.option("--quiet", is_flag=True, help="no progress bar")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return wrapper


def _run_style(job: Callable, out: str, quiet: bool) -> None:
    """Run a style job with a progress bar and snapshot writer, then write PNG + JSON sidecar."""
    from tqdm import tqdm

    from .style.transfer import check_output_path, sidecar_path, snapshot_writer

    check_output_path(out)
    snapshots: list[str] = []
    write_snapshot = snapshot_writer(out, snapshots)
    with tqdm(disable=quiet, file=sys.stderr, unit="step") as bar:
        def progress(info: dict) -> None:
            bar.total = info["steps_total"]
            bar.update(1)
            bar.set_postfix(loss=f"{info['losses']['total']:.4g}")
            write_snapshot(info)
        result = job(progress)
    record = result.record
    record["snapshots"] = snapshots
    (png,) = result.save(out)
    click.echo(f"wrote {png} and {sidecar_path(out)} ({record['status']}, {record['timings']['total_seconds']:.1f} s)")
    if record["status"] == "interrupted":
        click.echo("vis: interrupted (the best image so far was saved)", err=True)
        sys.exit(130)


@vis.command()
@model_options
@click.argument("style", nargs=-1, required=True)
@click.option("--size", default=256, show_default=True, type=int, help="output side (square)")
@click.option("--steps", default=300, show_default=True, type=int, help="loss evaluations")
@click.option("--layers", default=None, help="style layers, LAYER[:WEIGHT],… (default relu1_1,…,relu5_1)")
@click.option("--style-blend", default=None, help="weights of several style images, e.g. 0.7,0.3")
@click.option("--tv-weight", default=0.0, show_default=True, type=float)
@_style_options
@click.option("--out", default="texture.png", show_default=True, help="output PNG (JSON sidecar beside it)")
def texture(model_name: str, weights: str, device: str, seed: int, input_size: int | None, style: tuple[str, ...],
            size: int, steps: int, layers: str | None, style_blend: str | None, tv_weight: float, statistic: str,
            optimizer: str, lr: float | None, pooling: str, style_scale: float, max_pixels: int | None,
            snapshot_every: int, quiet: bool, out: str) -> None:
    """Synthesize a texture from noise with the style statistics of STYLE (Gatys et al. 2015)."""
    from .style.losses import DEFAULT_STYLE_LAYERS, parse_layer_weights
    from .style.transfer import MAX_PIXELS, synthesize_texture

    model = load_from_options(model_name, weights, device, seed, input_size, quiet)
    job = functools.partial(
        synthesize_texture, model, list(style), size=size, steps=steps,
        layers=parse_layer_weights(layers, "layers") if layers else DEFAULT_STYLE_LAYERS, statistic=statistic,
        tv_weight=tv_weight, optimizer=optimizer, lr=lr, pooling=pooling, style_scale=style_scale,
        style_blend=_number_list(style_blend, "--style-blend", float),
        max_pixels=MAX_PIXELS if max_pixels is None else max_pixels, seed=seed, snapshot_every=snapshot_every)
    _run_style(lambda progress: job(progress=progress), out, quiet)


@vis.command()
@model_options
@click.argument("content")
@click.argument("style", nargs=-1, required=True)
@click.option("--style-blend", default=None, help="weights of several style images, e.g. 0.7,0.3")
@click.option("--content-layer", default="relu4_2", show_default=True)
@click.option("--style-layers", default=None, help="LAYER[:WEIGHT],… (default relu1_1,…,relu5_1, equal)")
@click.option("--content-weight", default=1.0, show_default=True, type=float)
@click.option("--style-weight", default=None, type=float, help="default 10 (normalised losses)")
@click.option("--tv-weight", default=None, type=float, help="default 1")
@click.option("--init", "init", type=click.Choice(["content", "noise", "style"]), default="content",
              show_default=True)
@click.option("--preserve-colors", type=click.Choice(["none", "luminance", "histogram"]), default="none",
              show_default=True)
@click.option("--sizes", default=None, help="coarse-to-fine longest sides, e.g. 256,512")
@click.option("--steps", default=None, help="steps per size, e.g. 300,100 (default 300, then 100)")
@click.option("--size", default=None, help="output longest side N, or WxH (wct/adain; default: content's, ≤ 512)")
@click.option("--method", type=click.Choice(["gatys", "wct", "adain"]), default="gatys", show_default=True,
              help="gatys: optimise the image; wct/adain: one pass through a decoder (--decoder)")
@click.option("--decoder", default=None, type=click.Path(), help="wct/adain: a `vis train-decoder` file for this model")
@click.option("--alpha", default=1.0, show_default=True, type=float, help="wct/adain: 0 = content … 1 = full style")
@click.option("--mask", default=None, type=click.Path(),
              help="wct/adain, two styles: grey image, style 1 where white, style 2 where black")
@click.option("--refine", default=0, show_default=True, type=int,
              help="wct/adain: then N Gatys steps from the feed-forward result (Gatys options apply)")
@_style_options
@click.option("--out", default="transfer.png", show_default=True, help="output PNG (JSON sidecar beside it)")
def transfer(model_name: str, weights: str, device: str, seed: int, input_size: int | None, content: str,
             style: tuple[str, ...], style_blend: str | None, content_layer: str, style_layers: str | None,
             content_weight: float, style_weight: float | None, tv_weight: float | None, init: str,
             preserve_colors: str, sizes: str | None, steps: str | None, size: str | None, method: str,
             decoder: str | None, alpha: float, mask: str | None, refine: int, statistic: str,
             optimizer: str, lr: float | None, pooling: str, style_scale: float, max_pixels: int | None,
             snapshot_every: int, quiet: bool, out: str) -> None:
    """Paint CONTENT in the style of STYLE [STYLE2 …]: Gatys et al. 2016 (optimisation) or, with a
    trained decoder, WCT (Li et al. 2017) / AdaIN (Huang & Belongie 2017) in one pass."""
    from .errors import VisUsageError
    from .style.losses import DEFAULT_STYLE_LAYERS, parse_layer_weights
    from .style.transfer import DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, MAX_PIXELS, transfer_style

    size_list, step_list = _number_list(sizes, "--sizes"), _number_list(steps, "--steps")
    out_size = _output_size(size)
    gatys = dict(
        content_layer=content_layer,
        style_layers=parse_layer_weights(style_layers) if style_layers else DEFAULT_STYLE_LAYERS,
        statistic=statistic, content_weight=content_weight,
        style_weight=DEFAULT_STYLE_WEIGHT if style_weight is None else style_weight,
        tv_weight=DEFAULT_TV_WEIGHT if tv_weight is None else tv_weight, optimizer=optimizer,
        lr=lr, pooling=pooling, seed=seed, snapshot_every=snapshot_every)
    blend = _number_list(style_blend, "--style-blend", float)
    pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if method == "gatys":
        if decoder or mask or refine or alpha != 1.0:
            raise VisUsageError("--decoder, --alpha, --mask and --refine are for --method wct or adain, not gatys")
        if isinstance(out_size, tuple):
            raise VisUsageError(f"--method gatys takes --size as a longest side (N), got {size!r}")
        model = load_from_options(model_name, weights, device, seed, input_size, quiet)
        _run_style(lambda progress: transfer_style(
            model, content, list(style), progress=progress, style_blend=blend, init=init,
            preserve_colors=preserve_colors, sizes=size_list, steps=step_list, size=out_size, max_pixels=pixels,
            style_scale=style_scale, **gatys), out, quiet)
        return
    from .style.universal import _check_alpha
    from .style.universal_transfer import universal_transfer

    _check_alpha(alpha)
    if decoder is None:
        raise VisUsageError(f"--method {method} needs --decoder DECODER.pt (train one with `vis train-decoder`)")
    model = load_from_options(model_name, weights, device, seed, input_size, quiet)
    _run_style(lambda progress: universal_transfer(
        model, content, list(style), decoder=decoder, method=method, alpha=alpha, style_blend=blend, mask=mask,
        preserve_colors=preserve_colors, size=out_size, refine=refine, refine_options=gatys, max_pixels=pixels,
        progress=progress), out, quiet)


def _output_size(text: str | None) -> int | tuple[int, int] | None:
    """``--size``: ``N`` (longest side) or ``WxH`` → (H, W)."""
    if text is None:
        return None
    try:
        if "x" in text.lower():
            w, h = (int(part) for part in text.lower().split("x"))
            return h, w
        return int(text)
    except ValueError:
        raise click.BadParameter(f"expected N or WxH, got {text!r}", param_hint="--size") from None


DATASETS_HELP = ("a dataset folder whose images the runs may show (repeatable): a run's source images are read only "
                 "from inside the run or a folder given here")


@vis.command()
@model_options
@click.option("--run", "runs", multiple=True, type=click.Path(), help="run directory from `vis mine` (repeatable)")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (0.0.0.0 exposes it)")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--cache-dir", default=None, type=click.Path(), help="uploads, job results, job cache")
@click.option("--max-upload-mb", default=8, show_default=True, type=click.IntRange(1, 512),
              help="largest upload accepted")
@click.option("--stylizers", "stylizers_dir", default=None, type=click.Path(),
              help="folder of trained stylizers (vis train-stylizer .pt files) for the Transfer tab's fast mode; "
                   "each run's stylizers/ folder is searched too")
@click.option("--trust-run-code", is_flag=True,
              help="import model code and load weights that a run names (default: never; give --model/--weights)")
@click.option("--dataset", "datasets", multiple=True, type=click.Path(), help=DATASETS_HELP)
@click.option("--max-jobs", default=2, show_default=True, type=click.IntRange(1, 64),
              help="background jobs that run at once; more wait in a queue that shows their place")
@click.option("--verbose", is_flag=True, help="log every HTTP request (method, path, status, ms)")
@click.option("--debug-dash", is_flag=True, help="Dash debug mode (hot reload, dev tools; Flask's dev server)")
@click.pass_context
def dashboard(click_ctx: click.Context, model_name: str, weights: str, device: str, seed: int,
              input_size: int | None, runs: tuple[str, ...], host: str, port: int, cache_dir: str | None,
              max_upload_mb: int, stylizers_dir: str | None, trust_run_code: bool, datasets: tuple[str, ...],
              max_jobs: int, verbose: bool, debug_dash: bool) -> None:
    """Serve the Dash dashboard: Units, Live, Texture and Transfer tabs.

    Transfer runs Gatys optimisation, or a fast mode with a trained stylizer from RUN/stylizers/ or
    --stylizers DIR."""
    from click.core import ParameterSource

    from .dashboard import create_app, serve
    from .dashboard.wsgi import check_host, check_port

    check_host(host)   # before the model loads

    given = lambda name: click_ctx.get_parameter_source(name) != ParameterSource.DEFAULT  # noqa: E731
    app = create_app(list(runs), model_name if given("model_name") or not runs else None,
                     weights if given("weights") or not runs else None, device=device, seed=seed,
                     input_size=input_size, cache_dir=cache_dir, max_upload_bytes=max_upload_mb * 2**20,
                     stylizers_dir=stylizers_dir, trust_run_code=trust_run_code, max_jobs=max_jobs,
                     layouts=click_ctx.meta.get("vis_layouts", {}), datasets=datasets)
    for note in app.vis_context.notes:
        click.echo(f"vis dashboard: {note}", err=True)
    with _sigterm_exits():
        if debug_dash:
            check_port(host, port)   # Flask's server would print that it runs before it finds the port taken
            click.echo(f"vis dashboard: http://{host}:{port}/  (Ctrl+C stops)", err=True)
            app.run(host=host, port=port, debug=True)
            return
        serve(app, host, port, verbose, say=lambda line: click.echo(f"vis dashboard: {line}", err=True))


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While serving, `kill` (SIGTERM) ends the process as Ctrl+C does: through the exit handlers that
    remove the dashboard's temporary cache. Only on the main thread; the old handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)




@vis.command("export")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="site folder to write (or update)")
@click.option("--layers", "layer_list", default=None, help="comma-separated layers/aliases (default: every mined layer)")
@click.option("--title", default=None, help="the site's title (default: models and run names)")
@click.option("--max-mb", default=None, type=float, help="refuse, before writing, a site larger than this (MiB)")
@click.option("--dry-run", is_flag=True, help="report the site's size and what would change; write nothing")
@click.option("--dataset", "datasets", multiple=True, type=click.Path(), help=DATASETS_HELP)
@click.option("--quiet", is_flag=True, help="only the summary line")
def export_cmd(runs: tuple[str, ...], out: str, layer_list: str | None, title: str | None, max_mb: float | None,
               dry_run: bool, datasets: tuple[str, ...], quiet: bool) -> None:
    """Write RUN(s) as a static site (HTML + images, no server): index, unit grids, a page per unit."""
    from .export import MIB, export_site

    say = None if quiet else (lambda message: click.echo(f"vis export: {message}", err=True))
    layers_arg = [name.strip() for name in layer_list.split(",") if name.strip()] if layer_list else None
    report = export_site(list(runs), out, layers=layers_arg, title=title, max_mb=max_mb, dry_run=dry_run,
                         progress=say, datasets=datasets)
    if not quiet:
        for group, (count, size) in sorted(report.groups.items()):
            click.echo(f"  {group:<40} {count:>6} files {size / MIB:>9.1f} MiB", err=True)
        for skipped in report.skipped:
            click.echo(f"vis export: left out {skipped}", err=True)
    verb = "would write" if dry_run else "wrote"
    click.echo(f"{report.index}: {report.files} files, {report.size / MIB:.1f} MiB; {verb} {len(report.written)}, "
               f"kept {len(report.kept)}, {'would remove' if dry_run else 'removed'} {len(report.removed)}"
               + ("" if dry_run else f" ({report.linked} hard-linked, {report.copied} copied)")
               + f" in {report.seconds:.1f} s")


@vis.command()
@model_options
@click.option("--out", default="vis-demo", show_default=True, type=click.Path(), help="folder for images and run")
@click.option("--dataset", default=None, type=click.Path(), help="your images instead of the offline demo set")
@click.option("--tile", is_flag=True, help="cut the --dataset photos into multi-scale crops first")
@click.option("--layers", "layer_list", default="conv1,conv2,conv3,conv4,conv5", show_default=True,
              help="layers to mine (names or aliases)")
@click.option("--limit", default=None, type=click.IntRange(1), help="use only the first N images")
@click.option("--view-units", default=8, show_default=True, type=click.IntRange(0),
              help="units per layer that get deconv views now (the rest: none)")
@click.option("--maximize", "maximize_list", default="conv1,conv2,conv3:4", show_default=True,
              help="layers that get optimised images now: LAYER (every unit) or LAYER:N (the first N); '' for none")
@click.option("--maximize-steps", default=64, show_default=True, type=click.IntRange(1), help="optimisation steps")
@click.option("--maximize-size", default=None, type=click.IntRange(16),
              help="optimised image size (default: twice each layer's receptive field, 32 px at least)")
@click.option("--no-serve", is_flag=True, help="stop after writing the run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--verbose", is_flag=True, help="log every HTTP request of the dashboard")
def demo(model_name: str, weights: str, device: str, seed: int, input_size: int | None, out: str,
         dataset: str | None, tile: bool, layer_list: str, limit: int | None, view_units: int,
         maximize_list: str, maximize_steps: int, maximize_size: int | None, no_serve: bool, host: str, port: int,
         quiet: bool, verbose: bool) -> None:
    """Offline demo: build an image set, mine the top-9 of VGG16's block ends, serve the dashboard."""
    import time

    from .demo import DemoPlan, run_demo

    start = time.perf_counter()
    model = load_from_options(model_name, weights, device, seed, input_size, quiet=quiet)
    plan = DemoPlan(layers=[name.strip() for name in layer_list.split(",") if name.strip()], limit=limit,
                    view_units=view_units, maximize=[name for name in maximize_list.split(",") if name.strip()],
                    maximize_steps=maximize_steps, maximize_size=maximize_size)
    run = run_demo(model, out, dataset, tile, plan, seed=seed, quiet=quiet)
    click.echo(f"vis demo: run ready at {run} ({time.perf_counter() - start:.0f} s)", err=True)
    from pathlib import Path

    from .export import export_command
    from .rundir import open_run

    data = open_run(run).manifest["dataset"]["root"]   # the demo mined it (or the user's --dataset): shown
    click.echo(f"vis demo: share it as a static site: {export_command([run], Path(out) / 'site', [data])}",
               err=True)
    if no_serve:
        return
    from .dashboard import create_app, serve

    app = create_app([run], device=device, seed=seed, input_size=input_size, datasets=[data])
    serve(app, host, port, verbose, say=lambda line: click.echo(f"vis demo: {line}", err=True))


@vis.command("train-stylizer")
@model_options
@click.argument("style")
@click.option("--dataset", default=None, help="folder of training images (searched recursively); image mode")
@click.option("--mode", type=click.Choice(["image", "texture"]), default="image", show_default=True,
              help="image: stylise photos; texture: make textures from noise")
@click.option("--size", default=256, show_default=True, help="side of the square training crops / noise")
@click.option("--style-size", default=None, type=int, help="longest side of the style image (default --size)")
@click.option("--steps", default=2000, show_default=True, help="total training steps (resume continues to it)")
@click.option("--batch-size", default=4, show_default=True)
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate")
@click.option("--content-weight", default=1.0, show_default=True)
@click.option("--style-weight", default=10.0, show_default=True)
@click.option("--tv-weight", default=10.0, show_default=True)
@click.option("--style-layers", default=None,
              help="LAYER[:WEIGHT],… (default relu1_2,relu2_2,relu3_3,relu4_3)")
@click.option("--content-layer", default=None, help="default relu2_2")
@click.option("--width", default=32, show_default=True, help="generator base width (channels)")
@click.option("--res-blocks", default=5, show_default=True, help="generator residual blocks")
@click.option("--noise-channels", default=8, show_default=True, help="texture mode: noise channels")
@click.option("--input-skip", is_flag=True, help="generator starts as the identity (faster short runs)")
@click.option("--checkpoint-every", default=100, show_default=True, help="save to --out every N steps")
@click.option("--resume", is_flag=True, help="continue the checkpoint at --out")
@click.option("--out", default="stylizer.pt", show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_stylizer_cmd(model_name: str, weights: str, device: str, seed: int, input_size: int | None, style: str,
                       dataset: str | None, mode: str, size: int, style_size: int | None, steps: int,
                       batch_size: int, lr: float, content_weight: float, style_weight: float, tv_weight: float,
                       style_layers: str | None, content_layer: str | None, width: int, res_blocks: int,
                       noise_channels: int, input_skip: bool, checkpoint_every: int, resume: bool, out: str,
                       quiet: bool) -> None:
    """Train a feed-forward stylizer (Johnson et al. / Ulyanov et al.) for the STYLE image."""
    from .style.losses import parse_layer_weights
    from .style.train_stylizer import train_stylizer

    model = load_from_options(model_name, weights, device, seed, input_size, quiet=quiet)
    result = train_stylizer(model, style, dataset, out=out, mode=mode, size=size, style_size=style_size,
                            steps=steps, batch_size=batch_size, lr=lr, content_weight=content_weight,
                            style_weight=style_weight, tv_weight=tv_weight,
                            style_layers=parse_layer_weights(style_layers) if style_layers else None,
                            content_layer=content_layer, width=width, res_blocks=res_blocks,
                            noise_channels=noise_channels, input_skip=input_skip, seed=seed,
                            checkpoint_every=checkpoint_every, resume=resume, quiet=quiet)
    total = result.history["total"]
    span = f"loss {total[0]:.4g} → {total[-1]:.4g}" if total else "no steps run"
    click.echo(f"{out}: {mode} stylizer, {result.steps} steps, {span}")


@vis.command("train")
@click.option("--dataset", required=True, help="fashion-mnist (Debian's dataset-fashion-mnist) or an ImageFolder tree")
@click.option("--model", "model_name", default="smallcnn", show_default=True,
              help="smallcnn, a torchvision model name, or package.module:callable / file.py:callable")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1), help="total epochs (a rerun continues to it)")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=1e-3, show_default=True, type=float, help="Adam learning rate")
@click.option("--seed", default=0, show_default=True, type=SEED, help="initialisation and shuffling seed")
@click.option("--limit", default=None, type=click.IntRange(1), help="use only the first N images of each split")
@click.option("--every", default=50, show_default=True, type=click.IntRange(1), help="steps between watcher records")
@click.option("--layers", "layer_list", default=None, help="comma-separated layers to watch (default: every conv and fc layer)")
@click.option("--probe", default=64, show_default=True, type=click.IntRange(1), help="test images the watcher probes")
@click.option("--input-size", default=None, type=int, help="model input size (default: the model's; smallcnn 28)")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory (checkpoints, training log)")
@click.option("--overwrite", is_flag=True, help="replace another training already in --out")
@click.option("--quiet", is_flag=True, help="no progress bars")
def train_cmd(dataset: str, model_name: str, epochs: int, batch_size: int, lr: float, seed: int, limit: int | None,
              every: int, layer_list: str | None, probe: int, input_size: int | None, device: str, out: str,
              overwrite: bool, quiet: bool) -> None:
    """Train a classifier offline with the watcher on: a checkpoint per epoch, resumable (run the same
    command again), deterministic with --seed; prints the last checkpoint."""
    from .training import train

    layers = [name.strip() for name in layer_list.split(",") if name.strip()] if layer_list else None
    result = train(out, dataset, model_name, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, limit=limit,
                   every=every, layers=layers, input_size=input_size, probe=probe, device=device,
                   overwrite=overwrite, quiet=quiet)
    click.echo(str(result.checkpoint))


@vis.command("train-decoder")
@model_options
@click.option("--content", "content_dir", required=True, help="folder of content images (searched recursively)")
@click.option("--style", "style_dir", default=None,
              help="folder of style images: trains an AdaIN decoder (without it: WCT reconstruction decoders)")
@click.option("--layers", default="relu4_1", show_default=True,
              help="decoder layers, e.g. relu4_1, or relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 (the WCT cascade)")
@click.option("--size", default=256, show_default=True, help="side of the square training crops")
@click.option("--steps", default=2000, show_default=True, help="total training steps (resume continues to it)")
@click.option("--batch-size", default=4, show_default=True)
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate")
@click.option("--width", default=64, show_default=True, help="decoder's narrowest channel count")
@click.option("--depth", default=1, show_default=True, help="decoder convolutions per upsampling")
@click.option("--feature-weight", default=1.0, show_default=True, help="WCT: feature reconstruction weight")
@click.option("--style-weight", default=1.0, show_default=True, help="AdaIN: style loss weight")
@click.option("--style-layers", default=None, help="AdaIN: style loss layers (default relu1_1,…,relu4_1)")
@click.option("--checkpoint-every", default=100, show_default=True, help="save to --out every N steps")
@click.option("--resume", is_flag=True, help="continue the checkpoint at --out")
@click.option("--out", default="decoder.pt", show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_decoder_cmd(model_name: str, weights: str, device: str, seed: int, input_size: int | None,
                      content_dir: str, style_dir: str | None, layers: str, size: int, steps: int, batch_size: int,
                      lr: float, width: int, depth: int, feature_weight: float, style_weight: float,
                      style_layers: str | None, checkpoint_every: int, resume: bool, out: str, quiet: bool) -> None:
    """Train a decoder that inverts the encoder at --layers, for vis transfer --method wct|adain."""
    from .style.losses import parse_layer_weights
    from .style.train_decoder import train_decoder

    model = load_from_options(model_name, weights, device, seed, input_size, quiet=quiet)
    result = train_decoder(model, content_dir, style_dir, layers=[p.strip() for p in layers.split(",") if p.strip()],
                           out=out, size=size, steps=steps, batch_size=batch_size, lr=lr, width=width, depth=depth,
                           feature_weight=feature_weight, style_weight=style_weight,
                           style_layers=parse_layer_weights(style_layers) if style_layers else None, seed=seed,
                           checkpoint_every=checkpoint_every, resume=resume, quiet=quiet)
    total = result.history["total"]
    span = f"loss {total[0]:.4g} → {total[-1]:.4g}" if total else "no steps run"
    click.echo(f"{out}: {result.kind} decoder for {','.join(result.layers)}, {result.steps} steps, {span}")


@vis.command()
@click.argument("model_file")
@click.argument("inputs", nargs=-1)
@click.option("--out", default="stylized", show_default=True, help="output folder (PNG per input)")
@click.option("--strength", default=1.0, show_default=True, help="0 = input, 1 = stylised; blends between")
@click.option("--batch-size", default=4, show_default=True, help="equal-size images run together")
@click.option("--noise", is_flag=True, help="texture stylizer: synthesise from noise instead of inputs")
@click.option("--size", default=512, show_default=True, type=click.IntRange(1), help="--noise: texture side")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1), help="--noise: number of textures")
@click.option("--seed", default=0, show_default=True, type=SEED, help="--noise: noise seed")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--max-pixels", default=64_000_000, show_default=True, help="refuse larger input images")
@click.option("--quiet", is_flag=True, help="no progress bar")
def stylize(model_file: str, inputs: tuple[str, ...], out: str, strength: float, batch_size: int, noise: bool,
            size: int, count: int, seed: int, device: str, max_pixels: int, quiet: bool) -> None:
    """Apply a trained stylizer to INPUT images (same size out), or make textures with --noise."""
    from .errors import VisUsageError
    from .models import resolve_device
    from .style.stylizer import load_stylizer, stylize_files, texture_files

    stylizer = load_stylizer(model_file, device=resolve_device(device))
    if noise:
        if inputs:
            raise VisUsageError("`noise` makes textures from noise; give no `inputs` images with it")
        paths = texture_files(stylizer, out, size=size, count=count, seed=seed)
    else:
        paths = stylize_files(stylizer, inputs, out, strength=strength, batch_size=batch_size,
                              max_pixels=max_pixels, quiet=quiet)
    for path in paths:
        click.echo(str(path))


def flag_names(args: list[str]) -> dict[str, str]:
    """How the invoked command spells the library's parameters: Python name → flag (``k`` → ``--k``,
    ``views`` → ``--with``, ``batch_size`` → ``--batch-size``), arguments by their metavar."""
    command = next((vis.commands[a] for a in args if a in vis.commands), None)
    names: dict[str, str] = {}
    for param in command.params if command else ():
        flags = [opt for opt in param.opts if opt.startswith("--")]
        if not flags:
            names.setdefault(str(param.name), param.human_readable_name)
            continue
        names.setdefault(flags[0][2:].replace("-", "_"), flags[0])
        names.setdefault(str(param.name), flags[0])
    return names


def as_vis_error(exc: BaseException) -> VisError | None:
    """The one-line error an unexpected-but-known failure stands for: an OSError (wrong path: usage;
    disk full, read-only, permissions: runtime), running out of memory, a file that ends early."""
    if isinstance(exc, VisError):
        return exc
    if isinstance(exc, OSError):
        return from_os_error(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
            "out of memory" in str(exc) or "can't allocate memory" in str(exc))):
        return VisRuntimeError("out of memory; use smaller sizes or batches (or a device with more memory)")
    if isinstance(exc, EOFError):
        return VisRuntimeError("a file ended early (it is empty or truncated); remove or replace it")
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit 2 for usage errors and 1 for runtime failures (``--debug``
    adds the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not debug:
        warnings.showwarning = _warning_as_note
    try:
        vis.main(args=args, prog_name="vis", standalone_mode=False)
    except click.exceptions.Abort as exc:
        known = as_vis_error(exc.__context__) if isinstance(exc.__context__, EOFError) else None
        if known is not None:  # click turns an EOFError into Abort; a truncated file is not Ctrl-C
            _fail(known, args, debug)
        click.echo("vis: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = f"vis {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name != "vis" else "vis"
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"vis: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("vis: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        known = as_vis_error(exc)
        if known is None:
            if debug:
                traceback.print_exc()
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            click.echo(f"vis: error: unexpected {type(exc).__name__}: {first} (a bug: `vis --debug ...` "
                       "shows where; please report it)", err=True)
            sys.exit(1)
        _fail(known, args, debug)
    sys.exit(0)


def _warning_as_note(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
    """A library's warning as one line on stderr (``vis: note: …``), without the source line."""
    text = (str(message).strip().splitlines() or [category.__name__])[0][:200]
    click.echo(f"vis: note: {text}", err=True)


def _fail(error: VisError, args: list[str], debug: bool) -> None:
    """Print `error` as one line with this command's flag names (traceback first with ``--debug``), exit."""
    if debug:
        traceback.print_exc()
    click.echo(f"vis: error: {error.renamed(flag_names(args))}", err=True)
    sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
