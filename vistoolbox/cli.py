"""The ``vis`` command: parses arguments, calls the library, prints. No logic of its own."""
from __future__ import annotations

import functools
import json
import sys
import traceback
from typing import Any, Callable

import click

from .errors import VisError

DEBUG = {"on": False}


def model_options(func: Callable) -> Callable:
    """The options every command shares: --model --weights --device --seed --input-size."""
    @click.option("--model", "model_name", default="vgg16", show_default=True,
                  help="torchvision model name, or package.module:callable / file.py:callable")
    @click.option("--weights", default="hed", show_default=True,
                  help="imagenet | random | hed (vgg16, offline) | path to a state_dict")
    @click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
    @click.option("--seed", default=0, show_default=True, type=int, help="random seed")
    @click.option("--input-size", default=None, type=int, help="model input size (default: the model's)")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)
    return wrapper


def load_from_options(model_name: str, weights: str, device: str, seed: int, input_size: int | None,
                      quiet: bool = False):
    """Build the LoadedModel the shared options describe."""
    from .models import load_model

    return load_model(model_name, weights, device=device, seed=seed, input_size=input_size, quiet=quiet)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(package_name="vistoolbox")
def vis(debug: bool) -> None:
    """vistoolbox: see what the units of a CNN respond to."""
    DEBUG["on"] = debug


# === layers (issue 2) ===================================================================
@vis.command()
@model_options
@click.option("--size", default=None, type=int, help="input size for shapes (default: the model's)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def layers(model_name: str, weights: str, device: str, seed: int, input_size: int | None,
           size: int | None, as_json: bool) -> None:
    """List every layer with aliases, output shape, units and receptive field."""
    from .layers import layer_table

    model = load_from_options(model_name, weights, device, seed, input_size)
    rows = layer_table(model, size)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows]))
        return
    fmt = "{:<28} {:<18} {:<18} {:<16} {:>6} {:>9} {:>7} {:>11}"
    click.echo(fmt.format("name", "aliases", "type", "shape", "units", "rf_size", "stride", "offset"))
    for r in rows:
        pair = lambda v: "-" if v is None else (str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}")  # noqa: E731
        click.echo(fmt.format(r.name[:28], ",".join(r.aliases)[:18], r.type[:18],
                              "-" if r.shape is None else "x".join(map(str, r.shape)),
                              "-" if r.units is None else r.units, pair(r.rf_size), pair(r.rf_stride),
                              pair(r.rf_offset)))


# === maximize / dream (issue 3) =========================================================
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
    ]
    for flag, kind, text in reversed(knobs):
        func = click.option(flag, type=kind, default=None, help=text)(func)
    return func


def _knobs(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("steps", "lr", "size", "decay", "blur_radius", "blur_every", "norm_pct", "contrib_pct", "pad", "jitter")
    return {k: kwargs[k] for k in names if kwargs.get(k) is not None}


def _report(paths: list, record: dict) -> None:
    for path in paths:
        click.echo(str(path))
    init, final = record["activation_initial"], record["activation_final"]
    pairs = ", ".join(f"{a:.4g} -> {b:.4g}" for a, b in list(zip(init, final))[:8])
    click.echo(f"activation (initial -> final): {pairs}{' …' if len(init) > 8 else ''}", err=True)


@vis.command()
@model_options
@click.option("--layer", required=False, help="layer name or alias (e.g. conv4, fc8, features.8)")
@click.option("--unit", type=int, default=None, help="one unit (channel) index")
@click.option("--units", "units_spec", default=None, help="several units in one batch: 0-63 or 1,5,9")
@click.option("--all", "all_units", is_flag=True, help="every unit of the layer(s) into --run")
@click.option("--layers", "layers_spec", default=None, help="with --all: comma-separated layers")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="with --all: run directory (RUN/layers/<name>/maximize/)")
@click.option("--batch", default=16, show_default=True, type=int, help="with --all: units per pass")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="where --all runs: this process, or Ray (RAY_ADDRESS, else a local cluster)")
@click.option("--neuron", default=None, is_flag=False, flag_value="centre",
              help="optimise one spatial position: the centre (bare --neuron) or Y,X")
@click.option("--negate", is_flag=True, help="minimise instead of maximise")
@click.option("--diversity", default=0.0, show_default=True, type=float,
              help="weight of the Gram-cosine diversity term across the batch")
@click.option("--preset", default="lucid", show_default=True,
              help="lucid | distill | yosinski1 | yosinski2 | yosinski3 | yosinski4")
@knob_options
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="output PNG (JSON beside it)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def maximize(model_name: str, weights: str, device: str, seed: int, input_size: int | None, layer: str | None,
             unit: int | None, units_spec: str | None, all_units: bool, layers_spec: str | None,
             run_dir: str | None, batch: int, backend: str, neuron: str | None, negate: bool,
             diversity: float, preset: str, out: str | None, quiet: bool, **kwargs: Any) -> None:
    """Optimise the image that maximises a unit (or a batch of units) of a layer."""
    from .errors import VisUsageError
    from .actmax import api

    knobs = _knobs(kwargs)
    api.settings_for(preset, **knobs)  # fail fast on bad settings, before loading the model
    position = api.parse_neuron(neuron)
    if all_units:
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
    model = load_from_options(model_name, weights, device, seed, input_size, quiet)
    result = api.maximize(model, layer, chosen, preset=preset, neuron=position, negate=negate,
                          diversity=diversity, seed=seed, quiet=quiet, **knobs)
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



# === mine / merge (issue 4) =============================================================


# === texture / transfer (issue 5) =======================================================


# === dashboard (issue 6) ================================================================


# === demo (issue 7) =====================================================================


# === train-stylizer / stylize (issue 8) =================================================


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit 2 for usage errors and 1 for runtime failures."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        vis.main(args=args, prog_name="vis", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("vis: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = f"vis {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name != "vis" else "vis"
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"vis: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except VisError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"vis: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("vis: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
