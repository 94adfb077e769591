// Live wallboard: listens to the KPI API's server-sent events and redraws queue tiles, agent states,
// alerts and the day's trend. No external scripts: it must work on a closed network.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token") || sessionStorage.getItem("callstream-token") || "";
if (token) sessionStorage.setItem("callstream-token", token);
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const snapshots = new Map();   // scope key -> latest RealtimeSnapshot (protobuf JSON mapping)
const alerts = new Map();      // alert id -> latest Alert

// The protobuf JSON mapping writes an undefined ratio (proto3 doubles have no null) as the string "NaN".
function num(v) {
  if (v === undefined || v === null) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}
function fmtSeconds(v) {
  let s = num(v);
  if (s === null || s < 0) return "–";  // negative = unknown (e.g. no expected wait yet)
  s = Math.round(s);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
function fmtPct(v) { const n = num(v); return n === null ? "–" : `${n.toFixed(1)} %`; }
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}
function windowOf(snap, minutes) {
  return (snap.windows || []).find((w) => (w.windowMinutes || 0) === minutes) || {};
}

function renderQueues() {
  const box = document.getElementById("queues");
  box.replaceChildren();
  const queues = [...snapshots.values()].filter((s) => s.scope && s.scope.kind !== "KIND_AGENT")
    .sort((a, b) => (a.scope.kind === "KIND_CENTER" ? -1 : b.scope.kind === "KIND_CENTER" ? 1
      : (a.scope.id || "").localeCompare(b.scope.id || "")));
  for (const snap of queues) {
    const w15 = windowOf(snap, 15);
    const target = snap.serviceLevelTarget ?? 80;
    const sl = num(w15.serviceLevel);
    const breach = sl !== null && sl < target;
    const name = snap.scope.kind === "KIND_CENTER" ? "Center" : snap.scope.id;
    const tile = el("article", { class: `tile${breach ? " breach" : ""}`, "data-queue": name });
    const gauge = el("div", { class: "gauge", role: "meter", "aria-valuenow": String(sl ?? 0) },
      el("span", { style: `width:${Math.max(0, Math.min(100, sl ?? 0))}%` }), el("i", { style: `left:${target}%` }));
    tile.append(
      el("h3", {}, name),
      el("div", { class: "figure" }, "waiting", el("b", { class: "waiting" }, String(snap.callsWaiting || 0))),
      el("div", { class: "figure" }, "longest wait", el("b", {}, fmtSeconds(snap.longestWaitS || 0))),
      // the scope's T and goal in force (the queue's targets; the defaults for the center)
      el("div", { class: "figure" }, `SL 15 min (${snap.serviceLevelThresholdS ?? 20} s)`,
        el("b", { class: "sl" }, fmtPct(sl))), gauge,
      el("div", { class: "figure" }, "ASA 15 min", el("span", {}, fmtSeconds(w15.asaS))),
      el("div", { class: "figure" }, "abandon 15 min", el("span", {}, fmtPct(w15.abandonRate))),
      // proto3 JSON leaves a 0 out: an absent expected wait is 0 s (unknown is written as -1)
      el("div", { class: "figure" }, "expected wait", el("span", {}, fmtSeconds(snap.expectedWaitS ?? 0))),
    );
    box.append(tile);
  }
  const center = [...snapshots.values()].find((s) => s.scope && s.scope.kind === "KIND_CENTER");
  if (center) renderAgents(center);
}

function renderAgents(center) {
  const states = document.getElementById("agent-states");
  states.replaceChildren(...Object.entries(center.agentsByState || {}).sort()
    .map(([state, n]) => el("span", { "data-state": state }, `${state}: `, el("b", {}, String(n)))));
  const body = document.querySelector("#agents tbody");
  body.replaceChildren(...(center.agents || []).map((a) => el("tr", {},
    el("td", {}, a.agentId), el("td", {}, a.state), el("td", {}, a.reason || ""),
    el("td", {}, fmtSeconds(a.timeInStateS || 0)))));
}

function renderAlerts() {
  const list = document.getElementById("alerts");
  const firing = [...alerts.values()].filter((a) => a.state === "STATE_FIRING");
  list.replaceChildren(...firing.map((a) => el("li", { class: "alert", "data-kpi": a.kpi },
    `${a.kpi} ${a.scope?.id || "center"}: ${(num(a.value) ?? 0).toFixed(1)} (target ${a.comparison} ${a.target})`,
    (a.likelyCauses || []).length ? ` — likely: ${(a.likelyCauses || []).filter((c) => c.confirmed)
      .map((c) => c.text).join(", ") || a.likelyCauses.map((c) => c.text).join(", ")}` : "")));
}

async function renderTrend() {
  const day = new Date().toISOString().slice(0, 10);
  try {
    const res = await fetch(`/v1/kpis?scope=center&grain=30m&from=${day}T00:00:00Z&kpi=service_level&kpi=offered`,
      { headers: auth });
    if (!res.ok) return;
    const rows = (await res.json()).rows || [];
    const w = 720, h = 120, pad = 20;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`); svg.setAttribute("width", "100%");
    const points = rows.filter((r) => r.service_level !== null).map((r, i) => {
      const x = pad + (i / Math.max(1, rows.length - 1)) * (w - 2 * pad);
      const y = h - pad - (r.service_level / 100) * (h - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    line.setAttribute("points", points.join(" ")); line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#58a6ff"); line.setAttribute("stroke-width", "2");
    svg.append(line);
    document.getElementById("trend").replaceChildren(svg);
  } catch (err) { /* the trend is optional; live figures keep updating */ }
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource(`/v1/realtime/stream${token ? `?access_token=${encodeURIComponent(token)}` : ""}`);
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "good"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "bad"; });
  source.addEventListener("snapshot", (ev) => {
    const snap = JSON.parse(ev.data);
    snapshots.set(`${snap.scope?.kind}:${snap.scope?.id || ""}`, snap);
    document.getElementById("as-of").textContent = `figures as of ${snap.asOf || "–"}`;
    renderQueues();
  });
  source.addEventListener("alert", (ev) => {
    const alert = JSON.parse(ev.data);
    alerts.set(alert.alertId, alert);
    renderAlerts();
  });
}

connect();
renderTrend();
setInterval(renderTrend, 60_000);
