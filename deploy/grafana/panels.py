"""The panel shapes livereco's dashboards repeat, built with grafana-foundation-sdk.

Every panel answers one question and is titled as that question. Queries use
Grafana's ``$__rate_interval`` (and the Quality dashboard's ``$window``); the
real-Prometheus test substitutes both before it runs each query.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
RATE = "$__rate_interval"

Query = tuple[str, str]
"""A PromQL expression and its legend (``{{label}}`` names a series by its labels)."""


def datasource_variable() -> db.DatasourceVariable:
    """Lets a reader point the dashboard at any Prometheus; provisioning makes livereco's the default."""
    return db.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus")


def target(expr: str, legend: str, ref_id: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(DATASOURCE)


def timeseries_panel(title: str, queries: Sequence[Query], unit: str, description: str = "",
                     width: int = 12, minimum: float | None = 0, maximum: float | None = None) -> timeseries.Panel:
    """A time series of one or more queries, legend as a table with the last and max values."""
    panel = (timeseries.Panel().title(title).unit(unit).span(width).height(8).datasource(DATASOURCE)
             .fill_opacity(10).show_points(common.VisibilityMode.NEVER)
             .legend(cb.VizLegendOptions().show_legend(True)
                     .display_mode(common.LegendDisplayMode.TABLE).placement(common.LegendPlacement.BOTTOM)
                     .calcs(["lastNotNull", "max"])))
    if description:
        panel = panel.description(description)
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(target(expr, legend, chr(ord("A") + index)))
    return panel


def stat_panel(title: str, expr: str, legend: str, unit: str, description: str = "", width: int = 6,
               thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)) -> stat.Panel:
    """One number (its latest value), coloured by ``thresholds``: (lower bound or None for the base, colour)."""
    steps = [dm.Threshold(value=value, color=colour) for value, colour in thresholds]
    panel = (stat.Panel().title(title).unit(unit).span(width).height(4).datasource(DATASOURCE)
             .with_target(target(expr, legend, "A"))
             .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
             .color_mode(common.BigValueColorMode.BACKGROUND)
             .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"])))
    return panel.description(description) if description else panel


def rate_expr(metric: str, by: Sequence[str] = (), selector: str = "", window: str = RATE) -> str:
    """Per-second rate of a counter, summed over instances (and kept apart ``by`` labels)."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{window}]))" if selector else \
        f"sum{grouping} (rate({metric}[{window}]))"


def rate_panel(title: str, metric: str, by: Sequence[str] = (), legend: str = "", selector: str = "",
               unit: str = "ops", description: str = "", width: int = 12) -> timeseries.Panel:
    """Per-second rate of one counter, a series per combination of ``by`` labels."""
    default_legend = " ".join(f"{{{{{label}}}}}" for label in by) or "all"
    return timeseries_panel(title, [(rate_expr(metric, by, selector), legend or default_legend)], unit,
                            description, width)


def quantile_exprs(histogram: str, quantiles: Sequence[float], selector: str = "",
                   by: Sequence[str] = ()) -> list[Query]:
    """``histogram_quantile`` of each quantile over the histogram's buckets, summed over instances."""
    grouping = ", ".join(["le", *by])
    matcher = f"{{{selector}}}" if selector else ""
    series = " ".join(f"{{{{{label}}}}}" for label in by)
    return [(f"histogram_quantile({q}, sum by ({grouping}) (rate({histogram}_bucket{matcher}[{RATE}])))",
             f"p{round(q * 100)}{' ' + series if series else ''}") for q in quantiles]


def latency_panel(title: str, histogram: str, selector: str = "", quantiles: Sequence[float] = (0.5, 0.95, 0.99),
                  by: Sequence[str] = (), description: str = "", width: int = 12) -> timeseries.Panel:
    """Quantiles of a latency histogram (in seconds)."""
    return timeseries_panel(title, quantile_exprs(histogram, quantiles, selector, by), "s", description, width)


def ratio_expr(numerator: str, denominator: str, by: Sequence[str] = ()) -> str:
    """``numerator / denominator``; with ``by``, each numerator series over the one total (``group_left``)."""
    if by:
        return f"{numerator} / on() group_left() {denominator}"
    return f"{numerator} / {denominator}"


def ratio_panel(title: str, queries: Sequence[Query], description: str = "", width: int = 12,
                maximum: float | None = None) -> timeseries.Panel:
    """Shares (0 to 1, shown as percent)."""
    return timeseries_panel(title, queries, "percentunit", description, width, maximum=maximum)


def row(title: str) -> db.Row:
    return db.Row(title)


def dashboard(uid: str, title: str, description: str, panels: Sequence[Builder[dm.Panel] | db.Row],
              variables: Sequence[Builder[dm.VariableModel]] = ()) -> dm.Dashboard:
    """A dashboard of ``panels`` laid out left to right, rows starting new lines; ids numbered in order."""
    board = (db.Dashboard(title).uid(uid).description(description).tags(["livereco"])
             .time("now-1h", "now").refresh("30s").timezone("browser").editable()
             .tooltip(dm.DashboardCursorSync.CROSSHAIR)
             .with_variable(datasource_variable()))
    for variable in variables:
        board = board.with_variable(variable)
    for item in panels:
        board = board.with_row(item) if isinstance(item, db.Row) else board.with_panel(item)
    built = board.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built
