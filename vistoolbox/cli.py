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

    from .style.transfer import check_output_path, save_result, snapshot_writer

    check_output_path(out)
    snapshots: list[str] = []
    write_snapshot = snapshot_writer(out, snapshots)
    with tqdm(disable=quiet, file=sys.stderr, unit="step") as bar:
        def progress(info: dict) -> None:
            bar.total = info["steps_total"]
            bar.update(1)
            bar.set_postfix(loss=f"{info['losses']['total']:.4g}")
            write_snapshot(info)
        image, record = job(progress)
    record["snapshots"] = snapshots
    png, sidecar = save_result(image, record, out)
    click.echo(f"wrote {png} and {sidecar} ({record['status']}, {record['timings']['total_seconds']:.1f} s)")
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
        layers=parse_layer_weights(layers) if layers else DEFAULT_STYLE_LAYERS, statistic=statistic,
        tv_weight=tv_weight, optimizer=optimizer, lr=lr, pooling=pooling, style_scale=style_scale,
        style_blend=_number_list(style_blend, "--style-blend", float), max_pixels=max_pixels or MAX_PIXELS,
        seed=seed, snapshot_every=snapshot_every)
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
@click.option("--size", default=None, type=int, help="output longest side (default: content's, ≤ 512)")
@_style_options
@click.option("--out", default="transfer.png", show_default=True, help="output PNG (JSON sidecar beside it)")
def transfer(model_name: str, weights: str, device: str, seed: int, input_size: int | None, content: str,
             style: tuple[str, ...], style_blend: str | None, content_layer: str, style_layers: str | None,
             content_weight: float, style_weight: float | None, tv_weight: float | None, init: str,
             preserve_colors: str, sizes: str | None, steps: str | None, size: int | None, statistic: str,
             optimizer: str, lr: float | None, pooling: str, style_scale: float, max_pixels: int | None,
             snapshot_every: int, quiet: bool, out: str) -> None:
    """Paint CONTENT in the style of STYLE [STYLE2 …] (Gatys et al. 2016)."""
    from .style.losses import DEFAULT_STYLE_LAYERS, parse_layer_weights
    from .style.transfer import DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT, MAX_PIXELS, transfer_style

    size_list, step_list = _number_list(sizes, "--sizes"), _number_list(steps, "--steps")
    kwargs = dict(
        style_blend=_number_list(style_blend, "--style-blend", float), content_layer=content_layer,
        style_layers=parse_layer_weights(style_layers) if style_layers else DEFAULT_STYLE_LAYERS,
        statistic=statistic, content_weight=content_weight,
        style_weight=DEFAULT_STYLE_WEIGHT if style_weight is None else style_weight,
        tv_weight=DEFAULT_TV_WEIGHT if tv_weight is None else tv_weight, init=init, optimizer=optimizer,
        lr=lr, pooling=pooling, style_scale=style_scale, preserve_colors=preserve_colors, sizes=size_list,
        steps=step_list, size=size, max_pixels=max_pixels or MAX_PIXELS, seed=seed,
        snapshot_every=snapshot_every)
    model = load_from_options(model_name, weights, device, seed, input_size, quiet)
    _run_style(lambda progress: transfer_style(model, content, list(style), progress=progress, **kwargs),
               out, quiet)



# === dashboard (issue 6) ================================================================


# === demo (issue 7) =====================================================================


# === train-stylizer / stylize (issue 8) =================================================
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
    result = train_stylizer(style, dataset, out=out, model=model, mode=mode, size=size, style_size=style_size,
                            steps=steps, batch_size=batch_size, lr=lr, content_weight=content_weight,
                            style_weight=style_weight, tv_weight=tv_weight,
                            style_layers=parse_layer_weights(style_layers) if style_layers else None,
                            content_layer=content_layer, width=width, res_blocks=res_blocks,
                            noise_channels=noise_channels, input_skip=input_skip, seed=seed,
                            checkpoint_every=checkpoint_every, resume=resume, quiet=quiet)
    total = result.history["total"]
    span = f"loss {total[0]:.4g} → {total[-1]:.4g}" if total else "no steps run"
    click.echo(f"{out}: {mode} stylizer, {result.steps} steps, {span}")


@vis.command()
@click.argument("model_file")
@click.argument("inputs", nargs=-1)
@click.option("--out", default="stylized", show_default=True, help="output folder (PNG per input)")
@click.option("--strength", default=1.0, show_default=True, help="0 = input, 1 = stylised; blends between")
@click.option("--batch-size", default=4, show_default=True, help="equal-size images run together")
@click.option("--noise", is_flag=True, help="texture stylizer: synthesise from noise instead of inputs")
@click.option("--size", default=512, show_default=True, help="--noise: texture side")
@click.option("--count", default=1, show_default=True, help="--noise: number of textures")
@click.option("--seed", default=0, show_default=True, help="--noise: noise seed")
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
            raise VisUsageError("--noise makes textures from noise; give no INPUT images with it")
        paths = texture_files(stylizer, out, size=size, count=count, seed=seed)
    else:
        paths = stylize_files(stylizer, inputs, out, strength=strength, batch_size=batch_size,
                              max_pixels=max_pixels, quiet=quiet)
    for path in paths:
        click.echo(str(path))


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
