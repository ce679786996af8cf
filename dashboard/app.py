"""``create_app(...)``: the Dash app of ``vis dashboard`` (Units, Live, Texture, Transfer tabs)."""
from __future__ import annotations

from pathlib import Path

import dash
from dash import Input, Output, State, dcc, html

from vistoolbox.limits import whole

from . import jobs, live, live_cam, texture, transfer, units
from .context import DEFAULT_MAX_JOBS, DEFAULT_MAX_UPLOAD_BYTES, make_context
from .guard import failed_callback, install_guard
from .serving import register_routes

__all__ = ["create_app"]

ASSETS = Path(__file__).parent / "assets"


def create_app(runs: list[str | Path] | None = None, model: str | None = None, weights: str | None = None, *,
               device: str = "cpu", seed: int = 0, input_size: int | None = None, cache_dir: str | Path | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, stylizers_dir: str | Path | None = None,
               trust_run_code: bool = False, layouts: dict[str, str] | None = None,
               max_jobs: int = DEFAULT_MAX_JOBS, datasets: list[str | Path] | tuple = ()) -> dash.Dash:
    """Build the dashboard for run directories written by ``vis mine``.

    Args:
        runs: run directories (none: only Live, Texture and Transfer have content).
        model, weights: the model of the Live/Texture/Transfer tabs; default: the first run's model,
            else ``vgg16``/``hed``.
        cache_dir: uploads, job results and the background-job cache (default: a new temp folder).
        max_upload_bytes: the largest upload accepted (default 8 MiB).
        stylizers_dir: a folder of trained stylizers (``vis train-stylizer`` files) for the Transfer
            tab's fast mode, besides each run's ``stylizers/`` folder.
        trust_run_code: import model code and load weights that a run's manifest names (default:
            never; a run is data, only torchvision models with random or hed weights are rebuilt
            from it — name your model and weights with `model` and `weights`).
        datasets: folders whose images the runs may show (source images, the Live picker): a run's
            recorded dataset root is read only when it lies inside the run or inside one of these.
        layouts: layout overrides for the model's layers (layer → ``HWC``, ``NC:1+14x14``…), on top
            of the layouts the runs recorded.
        max_jobs: background jobs (texture, transfer, optimised images) that run at once; more
            wait in a queue that shows each its place (default 2).

    The app's shared state is ``app.vis_context`` (a :class:`~vistoolbox.dashboard.context.Context`).
    """
    extra = {"cache_dir": Path(cache_dir)} if cache_dir else {}
    ctx = make_context(runs, model, weights, device=device, seed=seed, input_size=input_size,
                       max_upload_bytes=max_upload_bytes, stylizers_dir=stylizers_dir,
                       trust_run_code=trust_run_code, layouts=dict(layouts or {}),
                       max_jobs=whole(max_jobs, "max_jobs", 1, 64), datasets=datasets, **extra)
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    manager = jobs.make_manager(ctx)
    app = dash.Dash(__name__, assets_folder=str(ASSETS), title="vistoolbox", suppress_callback_exceptions=True,
                    background_callback_manager=manager, on_error=failed_callback)
    app.server.config["MAX_CONTENT_LENGTH"] = max_upload_bytes * 2 + 2**20  # base64 + other form fields
    install_guard(app)   # malformed requests: 400, unknown paths: 404, never a 500
    register_routes(app.server, ctx, units.source_with_box)
    app.layout = html.Div(className="app", children=[
        dcc.Location(id="url", refresh=False),
        dcc.Store(id="selection"), dcc.Store(id="grid-key"), dcc.Store(id="keys"), dcc.Store(id="grid-click"),
        html.Header(className="header", children=[
            html.B("vistoolbox"), html.Span(f" · {ctx.model_name} / {ctx.weights}"),
            html.Span(f" · {len(ctx.runs)} run{'s' if len(ctx.runs) != 1 else ''}" if ctx.runs else
                      " · no run (make one with vis mine)", className="status"),
            *[html.Div(f"⚠ {note}", className="message") for note in ctx.notes]]),
        dcc.Tabs(id="tabs", value="units" if ctx.runs else "live", children=[
            dcc.Tab(label="Units", value="units", id="tab-units", children=units.layout(ctx)),
            dcc.Tab(label="Live", value="live", id="tab-live", children=live.layout(ctx)),
            dcc.Tab(label="Texture", value="texture", id="tab-texture", children=texture.layout(ctx)),
            dcc.Tab(label="Transfer", value="transfer", id="tab-transfer", children=transfer.layout(ctx)),
        ]),
    ])
    units.register(app, ctx, manager)
    live.register(app, ctx)
    live_cam.register(app, ctx, live.checked, live.layer_values)
    texture.register(app, ctx, manager)
    transfer.register(app, ctx, manager)
    manager.seal()  # this app's jobs run this app's functions, whatever apps the process makes later

    @app.callback(Output("url", "search", allow_duplicate=True), Output("tabs", "value"),
                  Input("live-open-unit", "n_clicks"), State("live-open-query", "data"), prevent_initial_call=True)
    def open_unit(n, query):  # noqa: ANN001, ANN202
        if not n or not query:
            raise dash.exceptions.PreventUpdate
        return query, "units"

    app.vis_context = ctx  # type: ignore[attr-defined]
    return app
