"""The report's Content-Security-Policy: the page runs its own script and nothing else.

Everything a target controls (messages, version strings, module names, values) is
escaped by the template. The policy is the second wall, for the day an escape is
missed: a script or a style element that is not the report's own is refused by the
browser, and the page can load nothing from anywhere (no network, no other file).

- ``script-src``: the sha256 of the page's one inline script, hashed from the exact
  text the page carries; no ``'unsafe-inline'``, so no inline event handler runs
  (``onclick=`` and the like), and the template has none.
- ``style-src``: the sha256 of the page's one ``<style>`` element. Style *attributes*
  stay allowed (``style-src-attr 'unsafe-inline'``): matplotlib's SVG charts colour
  every shape with them and the coverage bars set their width with them. A style
  attribute cannot run script, and with nothing loadable it cannot send anything out.
- ``img-src data:``: the heatmap's pixels are a PNG embedded in its SVG.
- ``base-uri`` / ``form-action 'none'``: injected markup cannot redirect links or forms.
"""
from __future__ import annotations

import base64
import hashlib

# What would end an inline element early, or change how the HTML parser reads its text.
_UNSAFE_IN = {"script": ("</script", "<!--"), "style": ("</style",)}


def source_hash(text: str) -> str:
    """The CSP hash source of an inline element's text: ``'sha256-<base64>'``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def check_inline(tag: str, text: str) -> str:
    """`text`, when it can sit inside ``<tag>...</tag>`` as it is; else a ValueError
    (the page's own assets only: a target's text never goes into these elements)."""
    lowered = text.lower()
    for marker in _UNSAFE_IN[tag]:
        if marker in lowered:
            raise ValueError(f"the report's inline {tag} contains {marker!r}, which ends the "
                             f"element or confuses the HTML parser: remove it from the asset")
    return text


def policy(script: str, style: str) -> str:
    """The policy of a page whose only inline script and style are these texts."""
    return "; ".join([
        "default-src 'none'",
        f"script-src {source_hash(script)}",
        f"style-src {source_hash(style)}",
        "style-src-attr 'unsafe-inline'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
    ])
