"""The page the dialog's Help button opens: every parameter of the algorithm, written from its own definitions.

Generated (into Processing's temporary folder) rather than kept as a file, so it cannot drift from the dialog: the
label, the name qgis_process and models use, the default, the choices with their labels and the help of each
parameter, the outputs, and a qgis_process command line.
"""
from __future__ import annotations

import html
from pathlib import Path

from qgis.core import QgsProcessingUtils
from qgis.PyQt.QtCore import QUrl

from .compat import FLAG_ADVANCED, FLAG_OPTIONAL

PROJECT_DOCS = "docs/plugin.md and README.md in the plugin's repository"


def _choices(parameter) -> str:
    labels = (parameter.metadata().get("widget_wrapper") or {}).get("labels", {})
    if not hasattr(parameter, "options"):
        return ""
    return "; ".join(f"<code>{html.escape(v)}</code>" + (f": {html.escape(labels[v])}" if v in labels else "")
                     for v in parameter.options())


def _row(parameter) -> str:
    flags = parameter.flags()
    notes = []
    if flags & FLAG_OPTIONAL:
        notes.append("optional")
    if flags & FLAG_ADVANCED:
        notes.append("advanced")
    default = parameter.defaultValue()
    return (f"<tr><td>{html.escape(parameter.description())}</td><td><code>{html.escape(parameter.name())}</code>"
            f"</td><td>{html.escape(parameter.type())}{' (' + ', '.join(notes) + ')' if notes else ''}</td>"
            f"<td>{'' if default in (None, '') else html.escape(str(default))}</td><td>{_choices(parameter)}</td>"
            f"<td>{html.escape(parameter.help() or '')}</td></tr>")


def page(algorithm) -> str:
    """The help page of `algorithm` (an initialised QgsProcessingAlgorithm) as HTML."""
    parameters = algorithm.parameterDefinitions()
    rows = "".join(_row(p) for p in parameters)
    outputs = "".join(f"<tr><td><code>{html.escape(o.name())}</code></td><td>{html.escape(o.description())}</td></tr>"
                      for o in algorithm.outputDefinitions())
    required = [p for p in parameters if not p.flags() & FLAG_OPTIONAL]
    example = " ".join(f"{p.name()}=…" for p in required)
    title = html.escape(algorithm.displayName())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}} td,th{{vertical-align:top;text-align:left;
padding:0.2em 0.6em;border-bottom:1px solid #ddd}} table{{border-collapse:collapse}}</style></head><body>
<h1>{title}</h1>
<p>{algorithm.shortHelpString().replace(chr(10) + chr(10), '</p><p>')}</p>
<h2>Parameters</h2>
<table><tr><th>In the dialog</th><th>Name (qgis_process, models)</th><th>Type</th><th>Default</th><th>Choices</th>
<th>What it does</th></tr>{rows}</table>
<h2>Outputs</h2><table>{outputs}</table>
<h2>From the command line</h2>
<pre>qgis_process run {html.escape(algorithm.id())} -- {html.escape(example)}</pre>
<p>More: {html.escape(PROJECT_DOCS)}.</p>
</body></html>
"""


def help_url(algorithm) -> str:
    """A file:// URL of `algorithm`'s help page, written on the first call of the session."""
    folder = Path(QgsProcessingUtils.tempFolder()) / "sure_fusion_help"
    path = folder / f"{algorithm.name()}.html"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(page(algorithm), encoding="utf-8")
    return QUrl.fromLocalFile(str(path)).toString()
