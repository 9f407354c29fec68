"""The report of ``bench access``: Markdown on stdout, results.json and a PNG in ``--out``."""

from __future__ import annotations

import importlib
from pathlib import Path

from marketfeed.bench.access.results import HTTP, KAFKA, LIBRARY, PATHS, AccessResults
from marketfeed.bench.core.report import DASH, ms, shown, table, write_json


def _ratio(value: float | None, base: float | None) -> str:
    return DASH if not value or not base else f"{value / base:,.1f}x"


def render_markdown(r: AccessResults) -> str:
    c = r.config
    out = [
        "# marketfeed bench access",
        "",
        f"{c['symbols']} symbols, the cache follows {c['interest']}, the feed at "
        f"{c['feed_rate']:,.0f} msg/s; {c['reads']} reads per path, one after the other.",
        "",
        "## A quote: from the cache, by request/response over Kafka, over HTTP",
        "",
    ]
    lib = r.path(LIBRARY)
    rows = []
    for p in r.paths:
        lat = p.latency
        rows.append(
            [
                PATHS[p.path],
                ms(lat["p50_ms"], 3),
                ms(lat["p99_ms"], 3),
                ms(lat["p99.9_ms"], 3),
                ms(lat["max_ms"], 3),
                shown(p.per_second, ",.0f"),
                _ratio(lat["p50_ms"], lib.latency["p50_ms"] if lib else None),
                _ratio(lat["p99_ms"], lib.latency["p99_ms"] if lib else None),
                str(p.failed),
            ]
        )
    out.append(
        table(
            [
                "path",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "reads/s",
                "p50 vs lib",
                "p99 vs lib",
                "failed",
            ],
            rows,
        )
    )
    if r.cache is not None:
        k = r.cache
        out += [
            "",
            f"What the cache cost meanwhile ({k.seconds:.1f} s, feed {k.feed_msgs_per_s:,.0f} "
            f"msg/s): caching consumer {shown(k.cores, '.3f')} CPU s/s, RSS "
            f"{shown(k.rss_mb, '.0f')} MB; its Redis {shown(k.redis_cores, '.3f')} CPU s/s. "
            "Request/response needs no cache but pays its latency on every read.",
        ]
    if r.orders:
        base = next((o for o in r.orders if o.path == KAFKA), None)
        out += ["", "## Orders, one at a time: command -> terminal event", ""]
        out.append(
            table(
                ["path", "orders", "p50 ms", "p99 ms", "max ms", "p50 vs in-process", "outcomes"],
                [
                    [
                        "POST /v1/orders" if o.path == HTTP else "in-process (no HTTP)",
                        str(o.orders),
                        ms(o.latency["p50_ms"], 1),
                        ms(o.latency["p99_ms"], 1),
                        ms(o.latency["max_ms"], 1),
                        _ratio(o.latency["p50_ms"], base.latency["p50_ms"] if base else None),
                        ", ".join(f"{k} {v}" for k, v in sorted(o.outcomes.items())),
                    ]
                    for o in r.orders
                ],
            )
        )
    if r.fanout:
        out += [
            "",
            f"## SSE fan-out: clients at {c['client_rate']:g} updates/s each, "
            f"{c['client_symbols']} symbols each",
            "",
            table(
                ["clients", "events/s", "per client /s", "API CPU s/s", "bench CPU s/s"],
                [
                    [
                        str(f.clients),
                        shown(f.events / f.seconds if f.seconds else None, ",.0f"),
                        shown(f.per_client_rate, ".1f"),
                        shown(f.api_cores, ".2f"),
                        shown(f.bench_cores, ".2f"),
                    ]
                    for f in r.fanout
                ],
            ),
        ]
    out += ["", *[f"- {n}" for n in r.notes]] if r.notes else []
    return "\n".join(out) + "\n"


def write_outputs(r: AccessResults, out: Path) -> list[str]:
    write_json(r, out)
    (out / "report.md").write_text(render_markdown(r))
    try:
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return ["no PNG: matplotlib is not installed (pip install -e '.[bench]')"]
    importlib.import_module("matplotlib").use("Agg")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [p.path for p in r.paths]
    for i, key in enumerate(("p50_ms", "p99_ms", "p99.9_ms")):
        left.bar(
            [x + i * 0.27 for x in range(len(names))],
            [p.latency[key] for p in r.paths],
            width=0.27,
            label=key.removesuffix("_ms"),
        )
    left.set_xticks([x + 0.27 for x in range(len(names))], names)
    left.set_yscale("log")
    left.set_ylabel("ms (log)")
    left.set_title("a quote read")
    left.legend()
    if r.fanout:
        right.plot(
            [f.clients for f in r.fanout],
            [f.api_cores or 0 for f in r.fanout],
            "o-",
            label="API CPU s/s",
        )
        right.plot(
            [f.clients for f in r.fanout],
            [f.per_client_rate / r.config["client_rate"] for f in r.fanout],
            "s--",
            label="share of the asked rate delivered",
        )
        right.set_xlabel("SSE clients")
        right.set_title("fan-out")
        right.legend()
    fig.tight_layout()
    path = out / "access.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [f"wrote {out / 'results.json'}, {out / 'report.md'}, {path}"]
