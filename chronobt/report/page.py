"""The HTML around the charts: one self-contained page, CSS inline, no script, no external reference.

Window selection uses radio-button tabs styled by CSS (``:checked ~ panel``), so the page needs no
JavaScript and prints or screenshots as it looks. Every chart sits in ``<figure class="chart"
data-chart="NAME">`` so a reader (or a test) can find it by name.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chronobt._version import __version__

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0 auto; max-width: 1240px; padding: 16px 24px 48px; color: #1b1b1b; background: #fff; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
h3 { font-size: 14px; margin: 14px 0 6px; }
.sub { color: #555; margin: 0 0 10px; }
nav a { margin-right: 14px; color: #1f5f9f; text-decoration: none; }
figure.chart { margin: 6px 0 14px; }
figure.chart svg { width: auto; max-width: 100%; height: auto; display: block; }
figcaption, .note { color: #555; font-size: 12.5px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 10px; }
th, td { padding: 3px 9px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; font-weight: 600; }
td.l, th.l { text-align: left; }
.scroll { max-height: 420px; overflow: auto; border: 1px solid #eee; display: inline-block; }
.kv td:first-child { text-align: left; color: #555; }
.kv td { text-align: left; white-space: normal; max-width: 900px; word-break: break-word; }
.pos { color: #1a7f37; } .neg { color: #b42318; }
.tabs > input { position: absolute; opacity: 0; }
.tabs > label { display: inline-block; padding: 5px 12px; margin: 0 4px 0 0; border: 1px solid #ccc;
  border-bottom: none; border-radius: 6px 6px 0 0; cursor: pointer; background: #f5f5f5; font-size: 13px; }
.tabs > .panel { display: none; border-top: 1px solid #ccc; padding-top: 6px; }
"""
_MAX_TABS = 12
_TAB_CSS = "\n".join(
    f".tabs > input:nth-of-type({k}):checked ~ .panel:nth-of-type({k}) {{ display: block; }}\n"
    f".tabs > input:nth-of-type({k}):checked + label {{ background: #fff; font-weight: 600; }}"
    for k in range(1, _MAX_TABS + 1)
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 4) -> str:
    """A number for a table: ``None``/NaN -> an em dash, else ``digits`` significant digits."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if not math.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a signed percentage: 0.0123 -> ``+1.23%``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{x * 100:+.{digits}f}%" if math.isfinite(x) else "—"


def signed(text: str, value: Any) -> str:
    """``text`` in a span coloured by the sign of ``value``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return text
    cls = "pos" if x > 0 else "neg" if x < 0 else ""
    return f'<span class="{cls}">{text}</span>' if cls else text


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, left: int = 1, scroll: bool = False
) -> str:
    """An HTML table; cells are already-escaped HTML; the first ``left`` columns align left."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} class="l">{v}</{tag}>' if i < left else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    text = (
        f"<table><thead><tr>{cells('th', [esc(h) for h in header])}</tr></thead><tbody>{body}</tbody></table>"
    )
    return f'<div class="scroll">{text}</div>' if scroll else text


def key_values(pairs: Mapping[str, Any]) -> str:
    """A two-column table of a run record (values escaped; ``None`` and empty values left out)."""
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
        for k, v in pairs.items()
        if v not in (None, "", [], {})
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def figure(name: str, svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="chart" data-chart="{esc(name)}">{svg}{cap}</figure>'


def tabs(group: str, items: Sequence[tuple[str, str]]) -> str:
    """Radio-button tabs: ``items`` are (label text, panel HTML); the first is shown."""
    items = list(items)[:_MAX_TABS]
    inputs = "".join(
        f'<input type="radio" name="{esc(group)}" id="{esc(group)}-{k}"{" checked" if k == 0 else ""}>'
        f'<label for="{esc(group)}-{k}">{esc(label)}</label>'
        for k, (label, _) in enumerate(items)
    )
    panels = "".join(f'<div class="panel">{panel}</div>' for _, panel in items)
    return f'<div class="tabs">{inputs}{panels}</div>'


@dataclass
class Page:
    """A report page being assembled: title, a subtitle line and sections in order."""

    title: str
    subtitle: str = ""
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, heading, body HTML)

    def add(self, anchor: str, heading: str, body: str) -> None:
        self.sections.append((anchor, heading, body))

    def html(self) -> str:
        nav = " ".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in self.sections)
        body = "\n".join(
            f'<section id="{esc(a)}"><h2>{esc(h)}</h2>\n{b}\n</section>' for a, h, b in self.sections
        )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="chronobt {esc(__version__)}">'
            f"<title>{esc(self.title)}</title><style>{_CSS}{_TAB_CSS}</style></head>\n"
            f"<body><h1>{esc(self.title)}</h1>"
            f'<p class="sub">{self.subtitle}</p><nav>{nav}</nav>\n{body}\n</body></html>\n'
        )
