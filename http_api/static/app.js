// The dashboard: a watchlist streamed over SSE, positions, lag, recent orders, an order ticket.
// Plain ES modules against the API on the same origin; nothing is fetched from elsewhere.

import { colour, drawLines } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const LAG_WINDOW_MS = 5 * 60 * 1000;
const WATCH_SIZE = 12;

async function getJSON(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

const money = (v) => (v == null ? "–" : v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const price = (v) => (v == null ? "–" : v.toFixed(2));
const age = (s) => (s == null ? "–" : s < 1 ? `${Math.round(s * 1000)}ms` : `${s.toFixed(1)}s`);
const signed = (v) => (v == null ? "" : v > 0 ? "pos" : v < 0 ? "neg" : "");

// ---- watchlist (SSE) -------------------------------------------------------------------
let source = null;
const rows = new Map();

function watch(symbols) {
  if (source) source.close();
  const body = $("#watchlist tbody");
  body.replaceChildren();
  rows.clear();
  for (const symbol of symbols) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    tr.append(cell(symbol, "sym"), cell("–", "px bid"), cell("–", "px ask"), cell("–"), cell("–"), cell("–", "seq"), cell("–", "age"));
    body.append(tr);
    rows.set(symbol, { tr, bid: null });
  }
  $("#watch-symbols").value = symbols.join(",");
  const url = `/v1/stream/quotes?symbols=${encodeURIComponent(symbols.join(","))}&max_rate=4`;
  source = new EventSource(url);
  source.addEventListener("quotes", (e) => {
    setChip("#stream-state", "stream live", true);
    for (const q of JSON.parse(e.data).quotes) showQuote(q);
  });
  source.addEventListener("unavailable", (e) => setChip("#stream-state", "cache unavailable", false, JSON.parse(e.data).detail));
  source.addEventListener("recovered", () => setChip("#stream-state", "stream live", true));
  source.onerror = () => setChip("#stream-state", "stream reconnecting", false);
}

function showQuote(q) {
  const row = rows.get(q.symbol);
  if (!row || q.bid == null) return;
  const tds = row.tr.children;
  const direction = row.bid == null || q.bid === row.bid ? "" : q.bid > row.bid ? "up" : "down";
  tds[1].textContent = price(q.bid);
  tds[2].textContent = price(q.ask);
  tds[3].textContent = q.bid_size;
  tds[4].textContent = q.ask_size;
  tds[5].textContent = q.seq;
  tds[6].textContent = age(q.age_s);
  tds[6].className = "age" + (q.stale ? " stale" : "");
  tds[1].classList.toggle("up", direction === "up");
  tds[1].classList.toggle("down", direction === "down");
  if (direction) {
    row.tr.classList.remove("flash-up", "flash-down");
    void row.tr.offsetWidth; // restart the flash
    row.tr.classList.add(`flash-${direction}`);
  }
  row.bid = q.bid;
}

function setChip(sel, text, ok, title) {
  const chip = $(sel);
  chip.textContent = text;
  chip.className = "chip " + (ok ? "ok" : "bad");
  chip.title = title || "";
}

// ---- positions -------------------------------------------------------------------------
async function refreshPositions() {
  const { status, body } = await getJSON("/v1/positions");
  const tbody = $("#positions tbody");
  if (status !== 200) {
    $("#positions-totals").textContent = body ? body.detail : `HTTP ${status}`;
    return;
  }
  tbody.replaceChildren(
    ...body.positions.filter((p) => p.qty !== 0 || p.realised !== 0).map((p) => {
      const tr = document.createElement("tr");
      tr.append(
        cell(p.account), cell(p.symbol, "sym"), cell(p.qty), cell(price(p.avg_price)),
        cell(price(p.mark), p.stale ? "stale" : ""), cell(money(p.unrealised), signed(p.unrealised)),
        cell(money(p.realised), signed(p.realised)),
      );
      return tr;
    }),
  );
  const t = body.totals;
  $("#positions-totals").textContent = `unrealised ${money(t.unrealised)} · realised ${money(t.realised)}`;
}

// ---- lag -------------------------------------------------------------------------------
const lagSeries = new Map();

function addLagPoint(point) {
  const t = point.time_ns / 1e6;
  for (const [service, s] of Object.entries(point.services)) {
    if (!lagSeries.has(service)) lagSeries.set(service, []);
    const points = lagSeries.get(service);
    if (!points.length || points[points.length - 1][0] < t) points.push([t, s.time_lag_s == null ? null : s.time_lag_s * 1000]);
    while (points.length && points[0][0] < Date.now() - LAG_WINDOW_MS) points.shift();
  }
}

async function loadLagHistory() {
  const { status, body } = await getJSON("/v1/lag/history");
  if (status === 200) body.points.forEach(addLagPoint);
}

async function refreshLag() {
  const { status, body } = await getJSON("/v1/lag");
  const states = $("#lag-states");
  if (status !== 200) {
    states.textContent = body ? `${body.error}: ${body.detail}` : `HTTP ${status}`;
    return;
  }
  const point = { time_ns: body.time_ns, services: {} };
  const parts = [];
  let index = 0;
  for (const s of body.services) {
    point.services[s.service] = s;
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.className = "swatch";
    swatch.style.background = colour(index++);
    span.append(swatch, `${s.service} ${s.state} · ${s.offset_lag} behind · ${age(s.time_lag_s)}`);
    parts.push(span);
  }
  states.replaceChildren(...parts);
  addLagPoint(point);
  drawLines($("#lag-chart"), lagSeries, { windowMs: LAG_WINDOW_MS, unit: "ms" });
}

// ---- orders ----------------------------------------------------------------------------
function outcomeText(o) {
  if (o.status === "filled") return `FILLED ${o.side === "B" ? "bought" : "sold"} ${o.qty} ${o.symbol} at ${o.price.toFixed(2)}`;
  if (o.status === "cancelled") return `CANCELLED ${o.symbol}: ${o.text}`;
  if (o.status === "rejected") return `REJECTED ${o.symbol || "-"}: ${o.reason}: ${o.text}`;
  return `PENDING ${o.order_id}: no outcome yet`;
}

async function refreshOrders() {
  const { status, body } = await getJSON("/v1/orders?limit=25");
  if (status !== 200) return;
  $("#orders tbody").replaceChildren(
    ...body.orders.map((o) => {
      const tr = document.createElement("tr");
      tr.dataset.order = o.order_id;
      const first = o.events[0];
      const when = first ? new Date(first.ts_ns / 1e6).toLocaleTimeString() : "";
      const detail = o.status === "filled" ? price(o.price) : o.reason || o.text || "";
      tr.append(
        cell(when), cell(o.account || ""), cell(o.side === "B" ? "buy" : o.side === "S" ? "sell" : ""),
        cell(o.qty || ""), cell(o.symbol || "", "sym"), cell(o.status, `status-${o.status}`), cell(detail, "detail"),
      );
      tr.lastChild.title = detail;
      return tr;
    }),
  );
}

// ---- order ticket ----------------------------------------------------------------------
async function sendOrder(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const order = {
    side: form.get("side"),
    symbol: String(form.get("symbol")).trim().toUpperCase(),
    qty: Number(form.get("qty")),
    account: String(form.get("account")).trim(),
  };
  if (form.get("limit")) order.limit = Number(form.get("limit"));
  const out = $("#ticket-outcome");
  out.className = "outcome pending";
  out.textContent = "sending…";
  $("#ticket-send").disabled = true;
  try {
    const { status, body } = await getJSON("/v1/orders", {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
      body: JSON.stringify(order),
    });
    if (status === 200 || status === 202) {
      out.className = `outcome ${body.status}`;
      out.textContent = outcomeText(body) + ` (${Math.round(body.elapsed_ms)} ms)`;
    } else {
      out.className = "outcome error";
      const detail = Array.isArray(body?.detail) ? body.detail.map((d) => `${d.field}: ${d.problem}`).join("; ") : body?.detail;
      out.textContent = `${body?.error || "error"} (HTTP ${status}): ${detail || ""}`;
    }
  } catch (err) {
    out.className = "outcome error";
    out.textContent = `the API did not answer: ${err}`;
  } finally {
    $("#ticket-send").disabled = false;
    refreshOrders();
    refreshPositions();
  }
}

// ---- start -----------------------------------------------------------------------------
async function start() {
  const health = await getJSON("/v1/health");
  const broker = health.body?.broker === "connected";
  setChip("#broker", broker ? "broker connected" : "broker unavailable", broker);
  const { status, body } = await getJSON("/v1/symbols?service=order_entry");
  const symbols = status === 200 ? body.symbols : [];
  $("#symbol-list").replaceChildren(...symbols.map((s) => Object.assign(document.createElement("option"), { value: s })));
  if (symbols.length && !$("#ticket-symbol").value) $("#ticket-symbol").value = symbols[0];
  const wanted = new URLSearchParams(location.search).get("symbols");
  watch(wanted ? wanted.split(",") : symbols.slice(0, WATCH_SIZE));
  $("#watch-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const list = $("#watch-symbols").value.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
    if (list.length) watch(list);
  });
  $("#ticket").addEventListener("submit", sendOrder);
  await loadLagHistory();
  const every = (ms, fn) => { fn(); setInterval(fn, ms); };
  every(2000, refreshPositions);
  every(1000, refreshLag);
  every(2000, refreshOrders);
  every(5000, async () => {
    const h = await getJSON("/v1/health");
    const ok = h.body?.broker === "connected";
    setChip("#broker", ok ? "broker connected" : "broker unavailable", ok);
  });
}

start();
