"""The HTML pages' templates (api/templates, Jinja2 with autoescaping) and what they share.

Every value a page shows goes through autoescaping: tenant data (item text, run messages) is
never trusted as markup. The quality chart is drawn here as SVG coordinates, so the page loads
nothing but itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import falcon
import jinja2

from published.explore import QualityPoint

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("api", "templates"),
    autoescape=jinja2.select_autoescape(["html", "svg"], default=True),
    trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)

CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 520, 180, 36


def when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))


_ENVIRONMENT.filters["when"] = when


def render(name: str, **values: object) -> str:
    return _ENVIRONMENT.get_template(name).render(**values)


def respond(resp: falcon.Response, name: str, status: str = falcon.HTTP_200,
            **values: object) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = render(name, **values)


@dataclass
class ChartPoint:
    x: float
    y: float
    label: str  # the version's training date
    value: float


@dataclass
class Chart:
    width: int
    height: int
    margin: int
    points: list[ChartPoint]
    top: float  # the value at the top of the y axis

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def quality_chart(quality: list[QualityPoint]) -> Chart | None:
    """Validation P@10 per version, oldest left; None when no version has a figure."""
    known = [p for p in quality if p.precision_at_10 is not None]
    if not known:
        return None
    top = max(max(p.precision_at_10 or 0.0 for p in known) * 1.2, 0.01)
    inner_w = CHART_WIDTH - 2 * CHART_MARGIN
    inner_h = CHART_HEIGHT - 2 * CHART_MARGIN
    step = inner_w / max(len(known) - 1, 1)
    points = [ChartPoint(CHART_MARGIN + i * step,
                         CHART_MARGIN + inner_h * (1 - (p.precision_at_10 or 0.0) / top),
                         when(p.trained_at), p.precision_at_10 or 0.0)
              for i, p in enumerate(known)]
    return Chart(CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN, points, top)
