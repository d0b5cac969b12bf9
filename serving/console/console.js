// livereco console: reads the server's read endpoints and GET /v1/console/summary; no build step, no dependencies.
"use strict";

const KEY = "livereco.apiKey";  // sessionStorage: forgotten when the tab closes
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

function apiKey() { return sessionStorage.getItem(KEY) || ""; }

async function api(path) {
  const headers = { accept: "application/json" };
  const key = apiKey();
  if (key) headers.authorization = "Bearer " + key;
  const answer = await fetch(path, { headers });
  let body = null;
  try { body = await answer.json(); } catch (_) { /* not JSON */ }
  if (!answer.ok) {
    const message = body && body.error ? body.error.message : answer.statusText;
    const error = new Error(answer.status === 401 || answer.status === 403
      ? `${answer.status}: ${message} (enter a read key above)` : `${answer.status}: ${message}`);
    error.status = answer.status;
    throw error;
  }
  return body;
}

function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
function percent(value) { return value === null || value === undefined ? "–" : number(value * 100, 1) + "%"; }
function seconds(value) {
  if (value === null || value === undefined) return "never";
  return value < 120 ? number(value, 1) + " s" : number(value / 60, 0) + " min";
}

function show(id, value, text) {
  const el = $(id);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = text === undefined ? number(value) : text;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function itemButton(row, itemId) {
  // The item id is a button: Enter or a click looks the item up below.
  const td = document.createElement("td");
  td.className = "item";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = itemId;
  button.title = "Look up " + itemId;
  button.addEventListener("click", () => { $("item-id").value = itemId; lookUpItem(); $("item-id").focus(); });
  td.appendChild(button);
  row.appendChild(td);
}

function fillList(tableId, items, emptyText) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  if (!items.length) {
    const row = body.insertRow();
    const td = cell(row, emptyText, "empty");
    td.colSpan = 4;
    return;
  }
  items.forEach((item, index) => {
    const row = body.insertRow();
    row.dataset.itemId = item.item_id;
    cell(row, String(index + 1));
    itemButton(row, item.item_id);
    cell(row, number(item.score, 4), "num");
    cell(row, item.source || "", "source source-" + (item.source || ""));
  });
}

function setStatus(text, bad = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("bad", bad);
}

// --- the summary ---------------------------------------------------------------------------------------------
let lastCategories = "";

function render(summary) {
  const s = summary.server, f = summary.flow;
  show("server-events-per-s", s.events_accepted_per_s);
  show("server-recommendations-per-s", s.recommendations_per_s);
  show("server-requests-per-s", s.requests_per_s);
  show("server-rejected-per-s", s.events_rejected_per_s);
  show("flow-events-per-s", f.events_per_s);
  show("flow-dead-letters-per-s", f.dead_letters_per_s);
  $("throughput-window").textContent = `Server: this process, over the last ${number(s.window_s, 0)} s` +
    (f.metrics_reachable ? `; flow: ${f.processes} process${f.processes === 1 ? "" : "es"}, over the last ` +
      `${number(f.window_s, 0)} s (${number(f.events_total, 0)} events since it started).` : ".");

  const fr = f.freshness;
  show("freshness-p50", fr ? fr.p50_ms : null);
  show("freshness-p99", fr ? fr.p99_ms : null);
  show("list-age-p50", s.list_age_p50_s);
  const parts = $("partitions").querySelector("tbody");
  parts.replaceChildren();
  for (const p of f.partitions) {
    const row = parts.insertRow();
    cell(row, String(p.partition));
    cell(row, number(p.entries, 0), "num");
    cell(row, p.oldest_unread_age_s === null ? "none" : number(p.oldest_unread_age_s, 1) + " s", "num");
    cell(row, seconds(p.heartbeat_age_s));
    cell(row, p.stalled ? "stalled" : "ok", p.stalled ? "bad" : "good");
  }

  const l = s.recommendations_latency;
  show("latency-p50", l.p50_ms, number(l.p50_ms, 2));
  show("latency-p95", l.p95_ms, number(l.p95_ms, 2));
  show("latency-p99", l.p99_ms, number(l.p99_ms, 2));
  show("fallback-share", s.fallback_share, percent(s.fallback_share));
  show("errors-per-s", s.errors_5xx_per_s);
  $("redis-up").textContent = s.redis_up ? "yes" : "no";
  $("server-process").textContent = `${l.count} requests in the window. This server process: up ` +
    `${number(s.uptime_s / 60, 0)} min, ${number((s.resident_memory_bytes || 0) / 1048576, 0)} MiB resident, ` +
    `${percent(s.cpu_share)} of a core.`;

  const q = f.quality;
  show("hr5", q ? q.hr_at_5 : null, percent(q ? q.hr_at_5 : null));
  show("hr10", q ? q.hr_at_10 : null, percent(q ? q.hr_at_10 : null));
  show("hr20", q ? q.hr_at_20 : null, percent(q ? q.hr_at_20 : null));
  show("mrr20", q ? q.mrr_at_20 : null, number(q ? q.mrr_at_20 : null, 3));
  show("scored", q ? q.scored : null, number(q ? q.scored : null, 0));
  $("quality-over").textContent = "Each positive event is scored against the list its user had just before it; " +
    (q ? (q.over === "window" ? `over the last ${number(f.window_s, 0)} s.`
      : "since the flow started (too few events scored in the last minute).") : "the flow's metrics are needed.");

  const note = $("flow-note");
  note.hidden = f.metrics_reachable;
  note.textContent = f.metrics_reachable ? "" : "The flow's own metrics are not reachable from the server: " +
    f.metrics_note + ". Flow throughput, freshness and quality are not shown; Prometheus has them.";

  const categories = summary.categories.join("\n");
  if (categories !== lastCategories) {
    lastCategories = categories;
    $("categories").replaceChildren(...summary.categories.map((c) => new Option(c, c)));
  }
}

let polling = null;
async function poll() {
  try {
    render(await api("/v1/console/summary"));
    setStatus("Live: updated " + new Date().toLocaleTimeString("en-GB") + ".");
  } catch (error) {
    setStatus("The summary could not be read: " + error.message, true);
  }
}

// --- trending, a user, an item ---------------------------------------------------------------------------------
async function showTrending() {
  const category = $("trending-category").value.trim();
  const query = new URLSearchParams({ n: "10" });
  if (category) query.set("category", category);
  try {
    const answer = await api("/v1/trending?" + query);
    fillList("trending-list", answer.items, category ? `Nothing trending in ${category} yet.` : "Nothing trending yet.");
  } catch (error) {
    fillList("trending-list", [], error.message);
  }
}

async function lookUpUser() {
  const userId = $("user-id").value.trim();
  if (!userId) return;
  const n = $("user-n").value || "10";
  const path = "/v1/users/" + encodeURIComponent(userId);
  $("user-summary").textContent = "Looking up " + userId + "…";
  const [list, profile] = await Promise.allSettled([api(`${path}/recommendations?n=${encodeURIComponent(n)}`),
    api(path + "/profile")]);
  if (list.status === "fulfilled") {
    const l = list.value;
    fillList("user-list", l.items, "An empty list.");
    const fallback = l.fallback === "unknown" ? " The flow has never seen this user: trending instead."
      : l.fallback === "short" ? " The personal part was short: trending fills the rest." : "";
    const age = l.updated_ms_ago === undefined ? "" : ` Personal list written ${number(l.updated_ms_ago / 1000, 1)} s ago.`;
    $("user-summary").textContent = `${l.items.length} items for ${l.user_id}, mostly ${l.source}.${fallback}${age}`;
  } else {
    fillList("user-list", [], list.reason.message);
    $("user-summary").textContent = list.reason.message;
  }
  const recent = $("user-recent").querySelector("tbody");
  const affinities = $("user-affinities").querySelector("tbody");
  recent.replaceChildren();
  affinities.replaceChildren();
  if (profile.status === "fulfilled") {
    const p = profile.value;
    $("user-session").textContent = "Session: " + (p.session_id === null ? "none named" : p.session_id) +
      `; ${p.recent.length} recent items.`;
    for (const r of p.recent) {
      const row = recent.insertRow();
      itemButton(row, r.item_id);
      cell(row, number(r.weight, 2), "num");
      cell(row, new Date(r.ts * 1000).toLocaleString("en-GB"));
    }
    for (const [category, weight] of p.affinities) {
      const row = affinities.insertRow();
      cell(row, category);
      cell(row, number(weight, 3), "num");
    }
  } else {
    $("user-session").textContent = profile.reason.status === 404 ? "No profile: the flow has not seen this user (or they expired)."
      : profile.reason.message;
  }
}

async function lookUpItem() {
  const itemId = $("item-id").value.trim();
  if (!itemId) return;
  const path = "/v1/items/" + encodeURIComponent(itemId);
  const [similar, catalog] = await Promise.allSettled([api(path + "/similar?n=10"), api(path)]);
  if (similar.status === "fulfilled") {
    fillList("item-similar", similar.value.items, "Nothing goes with it yet.");
    $("item-similar").querySelector("caption").textContent = similar.value.fallback === "unknown"
      ? "Unknown to the flow: trending instead" : "Items that go with it (co-visitation)";
  } else {
    fillList("item-similar", [], similar.reason.message);
  }
  const properties = $("item-properties");
  properties.replaceChildren();
  if (catalog.status === "fulfilled") {
    $("item-catalog-note").textContent = "";
    for (const [name, value] of Object.entries(catalog.value)) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
      properties.append(dt, dd);
    }
  } else {
    const status = catalog.reason.status;
    $("item-catalog-note").textContent = status === 404 ? "Not in the catalog (events alone do not add it)."
      : status === 403 ? "Reading the catalog needs an admin key; similar items need only a read key."
      : catalog.reason.message;
  }
}

function start() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    poll(); showTrending();
  });
  $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); $("api-key").value = ""; poll(); });
  $("trending-form").addEventListener("submit", (event) => { event.preventDefault(); showTrending(); });
  $("user-form").addEventListener("submit", (event) => { event.preventDefault(); lookUpUser(); });
  $("item-form").addEventListener("submit", (event) => { event.preventDefault(); lookUpItem(); });
  const params = new URLSearchParams(location.search);  // /console?user=ada&item=sku-1 opens them looked up
  if (params.get("user")) { $("user-id").value = params.get("user"); lookUpUser(); }
  if (params.get("item")) { $("item-id").value = params.get("item"); lookUpItem(); }
  poll();
  showTrending();
  polling = setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
