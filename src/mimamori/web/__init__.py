"""The web console and REST API (FastAPI): analyst queue, manager view, SME portal, partner view.

``create_app(settings)`` builds the app; ``serve`` runs it. Sits on top of every other
package; nothing below imports it.
"""

from mimamori.web.app import create_app, serve
from mimamori.web.settings import WebSettings

__all__ = ["WebSettings", "create_app", "serve"]
