"""The vistoolbox dashboard (``vis dashboard``): a Dash app over run directories and the live model.

    from dashboard import create_app
    app = create_app(["runs/vgg16"])          # the first run's model drives Live/Texture/Transfer
    app.run(host="127.0.0.1", port=8050)
"""
from .app import create_app

__all__ = ["create_app"]
