"""The vistoolbox dashboard (``vis dashboard``): a Dash app over run directories and the live model.

The code lives in the project's top-level ``dashboard/`` folder and installs as ``vistoolbox.dashboard``
(a package inside the library's namespace, so it never collides with other packages named ``dashboard``).
It holds no library logic: every tab calls the same public functions the ``vis`` command calls.

    from vistoolbox.dashboard import create_app
    app = create_app(["runs/vgg16"])          # the first run's model drives Live/Texture/Transfer
    serve(app, "127.0.0.1", 8050)             # waitress (else werkzeug); verbose=True logs requests
"""
from .app import create_app
from .wsgi import serve

__all__ = ["create_app", "serve"]
