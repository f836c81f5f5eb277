"""Dashboards as code: `python -m deploy.monitoring.generate [--check]` writes/diffs the JSON.

Every expression uses only metrics exported by valeur_monitor.metrics (plus `up`), so the
dashboards work against any Prometheus that scrapes the runners, with or without the recording
rules loaded. Grafana macros ($__rate_interval) and variables ($team, $channel) appear in
expressions; tests substitute them before validating the PromQL with promtool.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from deploy import generated

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
F = 'team=~"$team", channel=~"$channel"'   # overview filters (metrics with team/channel)
OUT = "valeur_rule_outcomes_total"
CREATED = "valeur_value_created_total"
DESTROYED = "valeur_value_destroyed_total"
AT_RISK = 'valeur_customers{band=~"critical|at_risk"}'
# valeur_customers and valeur_open_promises are store-wide counts that every worker exports
# (computed from the store at scrape time): aggregate them across instances with max, not sum.
# Shipped rules may be `expect` rules (outcome broken) or plain rules (outcome matched).
UNANSWERED = f'{OUT}{{rule="unanswered-request", outcome=~"broken|matched", {F}}}'
CALLBACKS_BROKEN = f'{OUT}{{rule=~".*callback.*", outcome="broken", {F}}}'
CALLBACKS_MISSED = f'{OUT}{{rule="missed-callback", outcome="matched", {F}}}'
VISITS = (f'{OUT}{{rule=~"visit-not-confirmed|technician-no-show", '
          f'outcome=~"broken|matched", {F}}}')
GREEN, RED = "green", "red"
# Customer pages of `valeur-monitor serve` (Grafana stays aggregate-only; drill down there).
PAGES = "${pages}/ui/at-risk"


def page_link(title: str, query_string: str = "") -> db.DashboardLink:
    """A data link from a panel to the at-risk page (optionally filtered by the series)."""
    return (db.DashboardLink(title).type(dm.DashboardLinkType.LINK)
            .url(PAGES + query_string).target_blank(True))


def per_hour(selector: str, by: str = "") -> str:
    """Points (or events) per hour at the panel's resolution."""
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({selector}{RATE})) * 3600"


def query(expr: str, legend: str, ref: str = "A", *, instant: bool = False) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return q.instant() if instant else q.range()


def color(name: str) -> list[dm.DynamicConfigValue]:
    return [dm.DynamicConfigValue("color", {"mode": "fixed", "fixedColor": name})]


def series(pid: int, title: str, description: str, unit: str, targets: Sequence[prom.Dataquery],
           *, w: int = 12, h: int = 8, mirror: Sequence[str] = (), stack: bool = False,
           colors: dict[str, str] | None = None, axis: str = "") -> timeseries.Panel:
    """A time series; refIds in `mirror` are drawn below the axis (destroyed vs created)."""
    panel = (timeseries.Panel().id(pid).title(title).description(description).datasource(DS)
             .unit(unit).span(w).height(h).targets(list(targets)).fill_opacity(10)
             .axis_label(axis)
             .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.RIGHT).show_legend(True).calcs(["mean", "max"]))
             .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                      .sort(cm.SortOrder.DESCENDING)))
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    for ref in mirror:
        panel = panel.override_by_query(ref, [dm.DynamicConfigValue("custom.transform",
                                                                    "negative-Y")])
    for ref, name in sorted((colors or {}).items()):
        panel = panel.override_by_query(ref, color(name))
    return panel


def single(pid: int, title: str, description: str, unit: str, targets: Sequence[prom.Dataquery],
           *, w: int = 6, h: int = 8, steps: Sequence[tuple[float | None, str]] = ((None, GREEN),)
           ) -> stat.Panel:
    """A single-value stat panel coloured by absolute thresholds."""
    return (stat.Panel().id(pid).title(title).description(description).datasource(DS).unit(unit)
            .span(w).height(h).targets(list(targets))
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .graph_mode(cm.BigValueGraphMode.AREA).color_mode(cm.BigValueColorMode.VALUE)
            .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                        .steps([dm.Threshold(value, name) for value, name in steps])))


def base(title: str, uid: str, description: str, time_from: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description)
            .tags(["valeur-monitor"]).timezone("browser").time(time_from, "now").refresh("1m")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR).readonly().annotations([])
            .link(db.DashboardLink("valeur-monitor dashboards")
                  .type(dm.DashboardLinkType.DASHBOARDS).tags(["valeur-monitor"]).as_dropdown(True).include_vars(False).keep_time(True))
            .with_variable(db.DatasourceVariable("datasource").label("Data source")
                           .type("prometheus")))


def label_variable(name: str, label: str) -> db.QueryVariable:
    return (db.QueryVariable(name).label(label).datasource(DS)
            .query(f"label_values({OUT}, {name})")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all")))


def overview() -> db.Dashboard:
    c, d = f"{CREATED}{{{F}}}", f"{DESTROYED}{{{F}}}"
    vs = {"A": GREEN, "B": RED}

    def split(by: str) -> list[prom.Dataquery]:
        return [query(per_hour(c, by), f"{{{{{by}}}}} created", "A"),
                query(per_hour(d, by), f"{{{{{by}}}}} destroyed", "B")]

    return (
        base("valeur-monitor · Customer value overview", "valeur-overview",
             "Value created and destroyed for customers, promises kept and broken, customers at "
             "risk. Points are the rule values of valeur-monitor (benefits minus costs).",
             "now-24h")
        .with_variable(label_variable("team", "Team"))
        .with_variable(label_variable("channel", "Channel"))
        .with_variable(db.TextBoxVariable("pages").label("Customer pages URL")
                       .description("Base URL of `valeur-monitor serve` (customer pages)")
                       .default_value("http://127.0.0.1:8080"))
        .link(db.DashboardLink("Customers at risk (pages)").type(dm.DashboardLinkType.LINK)
              .url(PAGES).target_blank(True))
        .with_row(db.Row("Value created vs destroyed").id(100))
        .with_panel(series(
            1, "Value created vs destroyed (points per hour)",
            "All rules together. Created above the axis, destroyed (magnitude of negative values) "
            "below it.", "short",
            [query(per_hour(c), "created", "A"), query(per_hour(d), "destroyed", "B")],
            mirror=["B"], colors=vs, axis="points / h"))
        .with_panel(series(
            2, "Net value (points per hour)",
            "Created minus destroyed. Below zero: customers lose more value than they get.",
            "short",
            [query(f"((sum(rate({c}{RATE})) or vector(0)) - (sum(rate({d}{RATE})) or vector(0)))"
                   " * 3600", "net", "A")], axis="points / h"))
        .with_panel(series(3, "Value by rule (points per hour)",
                           "Per rule: created above the axis, destroyed below.", "short",
                           split("rule"), mirror=["B"], axis="points / h"))
        .with_panel(series(4, "Value by team (points per hour)",
                           "Per team (event `team`): created above the axis, destroyed below.",
                           "short", split("team"), mirror=["B"], axis="points / h")
                    .data_links([page_link("Customers at risk in ${__field.labels.team}",
                                           "?team=${__field.labels.team}")]))
        .with_panel(series(5, "Value by channel (points per hour)",
                           "Per channel (phone, email, chat, ...): created above, destroyed below.",
                           "short", split("channel"), mirror=["B"], axis="points / h")
                    .data_links([page_link("Customers at risk on ${__field.labels.channel}",
                                           "?channel=${__field.labels.channel}")]))
        .with_panel(series(6, "Value destroyed by dimension (points per hour)",
                           "Which costs customers pay (money, time, effort, ...) and which "
                           "benefits they lose.", "short",
                           [query(per_hour(d, "dimension"), "{{dimension}}")],
                           stack=True, axis="points / h"))
        .with_row(db.Row("Promises and contacts").id(101))
        .with_panel(series(
            7, "Broken promises by kind (per hour)",
            "Outcome `broken` of promise (expect) rules, by rule: unanswered requests, missed "
            "callbacks, unconfirmed visits, ...", "short",
            [query(per_hour(f'{OUT}{{outcome="broken", {F}}}', "rule"), "{{rule}}")],
            stack=True, axis="promises / h"))
        .with_panel(series(
            8, "Promises kept on time (share, last hour)",
            "kept / (kept + late + broken) per promise rule over the last hour.", "percentunit",
            [query(f'sum by (rule) (rate({OUT}{{outcome="kept", {F}}}[1h])) / sum by (rule) '
                   f'(rate({OUT}{{outcome=~"kept|late|broken", {F}}}[1h]))', "{{rule}}")]))
        .with_panel(series(9, "Open promises by rule",
                           "Promises currently waiting to be kept (all teams).", "short",
                           [query("max by (rule) (valeur_open_promises)", "{{rule}}")],
                           stack=True, axis="promises"))
        .with_panel(series(
            10, "Repeat contacts (per hour)",
            "Outcome `repeat`: the customer had to come back about the same problem.", "short",
            [query(f'sum by (rule) (rate({OUT}{{outcome="repeat", {F}}}{RATE}) or '
                   f'rate({OUT}{{rule="repeated-problem", {F}}}{RATE})) * 3600', "{{rule}}")],
            axis="contacts / h"))
        .with_panel(series(
            11, "Unconfirmed visits (per hour)",
            "visit-not-confirmed (visit not confirmed in time) and technician-no-show.", "short",
            [query(per_hour(VISITS, "rule"), "{{rule}}")], stack=True, axis="visits / h"))
        .with_panel(series(
            12, "Unanswered requests and missed callbacks (per hour)",
            "The two promise failures that page support leads (see the alerts).", "short",
            [query(per_hour(UNANSWERED), "unanswered requests", "A"),
             query(f"sum (rate({CALLBACKS_BROKEN}{RATE}) or rate({CALLBACKS_MISSED}{RATE})) * 3600",
                   "missed callbacks", "B")], axis="per hour"))
        .with_row(db.Row("Customers").id(102))
        .with_panel(single(13, "Customers at risk",
                           "Customers whose score is in the critical or at_risk band.", "short",
                           [query(f"sum(max by (band) ({AT_RISK}))", "at risk")],
                           steps=((None, GREEN), (1, "orange"), (50, RED)))
                    .data_links([page_link("Customers at risk (list)")]))
        .with_panel(single(14, "Critical customers",
                           "Customers whose score is in the critical band (lowest).", "short",
                           [query('max(valeur_customers{band="critical"})', "critical")],
                           steps=((None, GREEN), (1, RED)))
                    .data_links([page_link("Customers at risk (list)")]))
        .with_panel(series(15, "Customers by score band",
                           "critical < -20 ≤ at_risk < -5 ≤ neutral ≤ 5 < positive "
                           "(default edges).",
                           "short", [query("max by (band) (valeur_customers)", "{{band}}")],
                           stack=True, axis="customers"))
        .with_panel(series(16, "Customer alerts (per hour)",
                           "Per-customer alerts raised by the rules (score-below-threshold, "
                           "broken-promises-7d, ...).", "short",
                           [query(per_hour("valeur_customer_alerts_total", "alert"), "{{alert}}")],
                           w=24, axis="alerts / h"))
    )


def pipeline() -> db.Dashboard:
    bucket = "valeur_batch_duration_seconds_bucket"
    size = "valeur_batch_size"

    def quantile(q: float, metric: str) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate({metric}{RATE})))"

    return (
        base("valeur-monitor · Pipeline health", "valeur-pipeline",
             "Throughput, dead letters, event-time lag, batch timings, store and broker errors, "
             "workers of valeur-monitor (embedded runner and faust workers).", "now-6h")
        .with_row(db.Row("Throughput").id(100))
        .with_panel(series(
            1, "Events per second", "Received from sources, applied by the engine, and refused.",
            "short",
            [query("sum(rate(valeur_events_received_total[$__rate_interval]))", "received", "A"),
             query("sum(rate(valeur_events_processed_total[$__rate_interval]))", "processed", "B"),
             query("sum(rate(valeur_events_dead_lettered_total[$__rate_interval]))",
                   "dead-lettered", "C"),
             query("sum(rate(valeur_events_duplicate_total[$__rate_interval]))", "duplicates",
                   "D"),
             query("sum(rate(valeur_events_late_total[$__rate_interval]))", "late", "E")],
            colors={"C": RED}, axis="events / s"))
        .with_panel(series(2, "Dead letters by reason (per hour)",
                           "Events refused (schema, too late, ...). See the runbook.", "short",
                           [query(per_hour("valeur_events_dead_lettered_total", "reason"),
                                  "{{reason}}")], stack=True, axis="events / h"))
        .with_panel(series(3, "Events received by source", "Per source (file, kafka topic, ...).",
                           "short", [query("sum by (source) (rate(valeur_events_received_total"
                                           "[$__rate_interval]))", "{{source}}")],
                           stack=True, axis="events / s"))
        .with_panel(series(4, "Events processed by type", "Per event type.", "short",
                           [query("sum by (type) (rate(valeur_events_processed_total"
                                  "[$__rate_interval]))", "{{type}}")],
                           stack=True, axis="events / s"))
        .with_row(db.Row("Latency").id(101))
        .with_panel(series(5, "Event-time lag", "Wall clock minus stream time, per worker. Grows "
                           "when processing falls behind (or during a replay of old events).", "s",
                           [query("max by (instance) (valeur_event_time_lag_seconds)",
                                  "{{instance}}")]))
        .with_panel(series(6, "Batch duration p50 / p99", "Time to process one batch.", "s",
                           [query(quantile(0.5, bucket), "p50", "A"),
                            query(quantile(0.99, bucket), "p99", "B")]))
        .with_panel(series(7, "Batch size", "Events per batch: median, p99 and mean.", "short",
                           [query(quantile(0.5, f"{size}_bucket"), "p50", "A"),
                            query(quantile(0.99, f"{size}_bucket"), "p99", "B"),
                            query(f"sum(rate({size}_sum{RATE})) / sum(rate({size}_count{RATE}))",
                                  "mean", "C")], axis="events"))
        .with_panel(single(8, "Stream time", "Latest watermark (event time) over all workers.",
                           "dateTimeAsIso",
                           [query("max(valeur_watermark_timestamp_seconds) * 1000", "stream time",
                                  instant=True)], w=12))
        .with_panel(series(14, "Consumer lag by partition",
                           "Records of the events topic not yet processed (high watermark "
                           "minus next offset), per partition, from the worker that owns it. "
                           "A partition whose lag only grows is stuck or under-provisioned.",
                           "short", [query("max by (topic, partition) "
                                           "(valeur_consumer_lag_records)",
                                           "{{topic}}/{{partition}}")],
                           w=24, axis="records"))
        .with_row(db.Row("Errors and workers").id(102))
        .with_panel(series(9, "Store errors by operation", "Failed store operations per second.",
                           "short", [query("sum by (operation) (rate(valeur_store_errors_total"
                                           "[$__rate_interval]))", "{{operation}}")],
                           axis="errors / s"))
        .with_panel(series(10, "Broker errors by operation",
                           "Failed broker (Kafka) operations per second.", "short",
                           [query("sum by (operation) (rate(valeur_broker_errors_total"
                                  "[$__rate_interval]))", "{{operation}}")], axis="errors / s"))
        .with_panel(single(11, "Workers up", 'Targets of job "valeur-monitor" Prometheus can '
                           "scrape.", "short",
                           [query('sum(up{job="valeur-monitor"})', "up", instant=True)],
                           steps=((None, RED), (1, GREEN))))
        .with_panel(single(12, "Running versions", "Workers per valeur-monitor version.",
                           "short", [query("count by (version) (valeur_build_info)",
                                           "{{version}}", instant=True)]))
        .with_panel(series(13, "Workers up by instance", "1 = scraped, 0 = down.", "short",
                           [query('up{job="valeur-monitor"}', "{{instance}}")]))
    )


def render() -> dict[str, str]:
    """File name -> JSON text (sorted keys, 2-space indent, trailing newline)."""
    out: dict[str, str] = {}
    for name, board in (("customer-value-overview.json", overview()),
                        ("pipeline-health.json", pipeline())):
        data: Any = json.loads(json.dumps(board.build(), cls=JSONEncoder))
        out[name] = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return generated.main(argv, module="deploy.monitoring.generate", doc=__doc__,
                          what="dashboard(s)",
                          render=lambda: {DASHBOARDS / n: t for n, t in render().items()})

if __name__ == "__main__":
    sys.exit(main())
