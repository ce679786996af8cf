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


# === mine / merge (issue 4) =============================================================


# === texture / transfer (issue 5) =======================================================


# === dashboard (issue 6) ================================================================
@vis.command()
@model_options
@click.option("--run", "runs", multiple=True, type=click.Path(), help="run directory from `vis mine` (repeatable)")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (0.0.0.0 exposes it)")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--cache-dir", default=None, type=click.Path(), help="uploads, job results, job cache")
@click.option("--max-upload-mb", default=8, show_default=True, type=click.IntRange(1, 512),
              help="largest upload accepted")
@click.option("--debug-dash", is_flag=True, help="Dash debug mode (hot reload, dev tools)")
@click.pass_context
def dashboard(click_ctx: click.Context, model_name: str, weights: str, device: str, seed: int,
              input_size: int | None, runs: tuple[str, ...], host: str, port: int, cache_dir: str | None,
              max_upload_mb: int, debug_dash: bool) -> None:
    """Serve the Dash dashboard: Units, Live, Texture and Transfer tabs."""
    from click.core import ParameterSource

    from dashboard import create_app

    given = lambda name: click_ctx.get_parameter_source(name) != ParameterSource.DEFAULT  # noqa: E731
    app = create_app(list(runs), model_name if given("model_name") or not runs else None,
                     weights if given("weights") or not runs else None, device=device, seed=seed,
                     input_size=input_size, cache_dir=cache_dir, max_upload_bytes=max_upload_mb * 2**20)
    click.echo(f"vis dashboard: http://{host}:{port}/  (Ctrl+C stops)", err=True)
    app.run(host=host, port=port, debug=debug_dash)




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
