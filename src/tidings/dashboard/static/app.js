// tidings dashboard: a page per hash route, refreshed by polling the JSON API.
// Every text from the broker goes through textContent (never innerHTML): event values,
// keys and error messages render as text, whatever they hold.
"use strict";

const REFRESH_MS = 2000;
let timer = null;
let flash = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function badge(status) { return el("span", { class: "badge " + status }, status); }
function num(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (!s) return "0 s";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return (s / 3600).toFixed(1) + " h";
}

function when(epoch) { return epoch ? new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–"; }

function sparkline(values) {
  const w = 120, h = 24;
  const box = svg("svg", { width: w, height: h, class: "spark", viewBox: `0 0 ${w} ${h}` });
  const pts = values.slice(-60);
  if (pts.length < 2) return box;
  const max = Math.max(...pts, 1);
  const step = w / (pts.length - 1);
  const line = pts.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`);
  box.append(svg("polyline", { points: line.join(" ") }));
  const title = svg("title", {});
  title.textContent = "events/s over the last " + pts.length + " samples; max " + max;
  box.append(title);
  return box;
}

function table(headers, rows, opts) {
  const head = el("tr", {}, ...headers.map(([label, cls]) => el("th", { class: cls || null }, label)));
  const body = rows.map((r) => r);
  return el("table", { id: (opts && opts.id) || null }, el("thead", {}, head), el("tbody", {}, ...body));
}

function td(value, cls) { return el("td", { class: cls || null }, value); }

async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  const doc = await res.json();
  if (!res.ok) throw new Error(doc.error || res.statusText);
  return doc;
}

async function post(path) {
  const headers = { "X-Tidings-Action": "1" };
  let token = sessionStorage.getItem("tidings-token");
  let res = await fetch(path, { method: "POST", headers: token ? { ...headers, Authorization: "Bearer " + token } : headers });
  if (res.status === 401) {
    token = window.prompt("Dashboard token");
    if (!token) throw new Error("a token is needed for actions");
    sessionStorage.setItem("tidings-token", token);
    res = await fetch(path, { method: "POST", headers: { ...headers, Authorization: "Bearer " + token } });
  }
  const doc = await res.json();
  if (!res.ok) throw new Error(doc.error || res.statusText);
  return doc;
}

// -- pages ------------------------------------------------------------------------------

async function overview() {
  const doc = await api("/api/overview");
  document.getElementById("broker").textContent = doc.broker;
  const rows = doc.groups.map((g) =>
    el("tr", { "data-group": g.group },
      td(el("a", { href: "#/group/" + encodeURIComponent(g.group) }, g.group)),
      td(badge(g.status)),
      td(num(g.lag), "num lag"),
      td(seconds(g.lag_seconds), "num lag-seconds"),
      td(num(g.rate) + "/s", "num"),
      td(sparkline(g.history)),
      td(num(g.partitions), "num"),
      td(g.workers.length ? g.workers.join(", ") : "none", "workers")));
  const workers = doc.workers.map((w) =>
    el("tr", {},
      td(w.worker), td(w.app), td(w.groups.join(", ")),
      td(num(w.handled), "num"), td(num(w.retried), "num"), td(num(w.dead_lettered), "num"),
      td(num(w.in_flight), "num"), td(w.backpressure ? "paused" : "flowing"),
      td(seconds(w.uptime), "num"), td(w.version)));
  return [
    el("h1", {}, "Consumer groups"),
    table([["Group"], ["Status"], ["Lag", "num"], ["Lag (time)", "num"], ["Throughput", "num"], ["Last minutes"], ["Partitions", "num"], ["Workers"]], rows, { id: "groups" }),
    el("h2", {}, "Workers"),
    workers.length ? table([["Worker"], ["App"], ["Groups"], ["Handled", "num"], ["Retried", "num"], ["Dead-lettered", "num"], ["In flight", "num"], ["Fetching"], ["Up", "num"], ["Version"]], workers, { id: "workers" })
      : el("p", { class: "muted" }, "No worker reports status right now (workers publish to tidings.status while `tidings run` runs)."),
  ];
}

async function groupPage(name) {
  const g = await api("/api/groups/" + encodeURIComponent(name));
  const overviewDoc = await api("/api/overview");
  const parts = g.partitions.map((p) =>
    el("tr", {},
      td(p.topic), td(p.partition, "num"), td(num(p.committed), "num"), td(num(p.end), "num"),
      td(num(p.lag), "num lag"), td(seconds(p.lag_seconds), "num"), td(badge(p.status)), td(p.owner || "–")));
  const workers = g.worker_details.map((w) => {
    const running = w.in_flight_events.length
      ? el("ul", {}, ...w.in_flight_events.map((e) =>
        el("li", {}, `${e.topic}[${e.partition}]@${e.offset} key ${e.key === null ? "–" : e.key}: `,
          el("strong", {}, seconds(e.age)), e.running ? " (running)" : " (queued)")))
      : el("span", { class: "muted" }, "idle");
    return el("tr", {}, td(w.worker), td(num(w.handled), "num"), td(num(w.failed), "num"),
      td(num(w.in_flight), "num"), td(w.assigned.map((a) => `${a[0]}[${a[1]}]`).join(", ")), td(running));
  });
  const items = [
    el("h1", {}, "Group ", el("span", { id: "group-name" }, g.group), " ", badge(g.status)),
    el("p", {}, `Lag ${num(g.lag)} events, ${seconds(g.lag_seconds)} behind; ${num(g.rate)} events/s. `, sparkline(g.history)),
  ];
  if (g.paused) items.push(el("p", { id: "paused" }, "Paused on request: running handlers finish, nothing new is fetched."));
  if (overviewDoc.actions) {
    const toggle = g.paused ? "resume" : "pause";
    items.push(el("p", {},
      el("button", { class: "action", id: "replay", onclick: () => act(g.group, "replay") }, "Replay dead letters"), " ",
      el("button", { class: "action", id: toggle, onclick: () => act(g.group, toggle) }, g.paused ? "Resume group" : "Pause group")));
  }
  items.push(
    el("h2", {}, "Partitions"),
    table([["Topic"], ["Partition", "num"], ["Committed", "num"], ["End", "num"], ["Lag", "num"], ["Lag (time)", "num"], ["Status"], ["Owner"]], parts, { id: "partitions" }),
    el("h2", {}, "Workers"),
    workers.length ? table([["Worker"], ["Handled", "num"], ["Failed", "num"], ["In flight", "num"], ["Assigned"], ["Oldest in flight (age)"]], workers, { id: "group-workers" })
      : el("p", { class: "muted" }, "No worker of this group reports status right now."),
    el("p", {}, el("a", { href: "#/dead-letters/" + encodeURIComponent(g.group) }, "Dead letters of " + g.group)));
  return items;
}

async function act(group, action) {
  try {
    const res = await post("/api/groups/" + encodeURIComponent(group) + "/" + action);
    flash = { ok: true, text: action === "replay" ? `Replayed ${res.replayed} dead letter(s) to group ${group}.`
      : `Asked the workers of ${group} to ${action}; they follow with their next status report (5 s by default).` };
  } catch (err) {
    flash = { ok: false, text: action + " failed: " + err.message };
  }
  render();
}

async function topicsPage() {
  const doc = await api("/api/topics");
  const rows = doc.topics.map((t) =>
    el("tr", { "data-topic": t.name },
      td(t.name), td(t.kind), td(t.partitions, "num"),
      td(t.retention === null ? "default" : seconds(t.retention), "num"),
      td(t.end_offsets.join(" / "), "num"), td(num(t.events), "num"),
      td(num(t.delayed_pending), "num delayed"), td(t.next_due ? when(t.next_due) : "–", "next-due")));
  return [el("h1", {}, "Topics"),
    table([["Topic"], ["Kind"], ["Partitions", "num"], ["Retention", "num"], ["End offsets", "num"], ["Events", "num"], ["Delayed pending", "num"], ["Next due"]], rows, { id: "topics" })];
}

async function deadLettersPage(group) {
  const doc = await api("/api/dead-letters" + (group ? "?group=" + encodeURIComponent(group) : ""));
  const picker = el("p", {}, "Group: ",
    el("a", { href: "#/dead-letters" }, "all"),
    ...doc.groups.flatMap((g) => [" · ", el("a", { href: "#/dead-letters/" + encodeURIComponent(g) }, g)]));
  const rows = doc.dead_letters.map((d) =>
    el("tr", { class: "clickable", "data-id": d.id, onclick: () => showLetter(d.id) },
      td(d.group), td(d.event_type), td(d.reason, "reason"), td(`${d.error_type}: ${d.error}`, "error"),
      td(num(d.attempts), "num"), td(`${d.topic}[${d.partition}]@${d.offset}`), td(d.failed_at), td(badge(d.status))));
  return [el("h1", {}, "Dead letters" + (group ? " of " + group : "")), picker,
    rows.length ? table([["Group"], ["Type"], ["Reason"], ["Error"], ["Attempts", "num"], ["Original position"], ["Failed at"], ["Replay"]], rows, { id: "dead-letters" })
      : el("p", { class: "muted" }, "No dead letters.")];
}

async function showLetter(id) {
  const d = await api("/api/dead-letters/" + id);
  const body = document.getElementById("letter-body");
  const value = d.value_is_json ? JSON.stringify(d.value, null, 2) : String(d.value);
  body.replaceChildren(
    el("h2", {}, "Event " + d.event_id + " ", badge(d.status)),
    el("p", {}, "Key: " + (d.key === null ? "–" : d.key)),
    el("h2", {}, "Headers"),
    table([["Header"], ["Value"]], d.headers.filter((h) => h[0] !== "tidings-dlq-traceback").map((h) => el("tr", {}, td(h[0]), td(h[1])))),
    el("h2", {}, "Value"), el("pre", { id: "letter-value" }, value),
    el("h2", {}, "Traceback"), el("pre", {}, d.traceback || "–"));
  document.getElementById("letter").showModal();
}

// -- routing ----------------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "group" && parts[1]) return ["overview", () => groupPage(parts[1])];
  if (parts[0] === "topics") return ["topics", topicsPage];
  if (parts[0] === "dead-letters") return ["dead-letters", () => deadLettersPage(parts[1] || null)];
  return ["overview", overview];
}

async function render() {
  clearTimeout(timer);
  const [nav, page] = route();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.id === "nav-" + nav);
  const main = document.getElementById("main");
  try {
    const items = await page();
    const note = flash ? [el("div", { class: flash.ok ? "flash" : "error", id: "flash" }, flash.text)] : [];
    main.replaceChildren(...note, ...items);
    document.getElementById("live").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    main.replaceChildren(el("div", { class: "error" }, "Could not load: " + err.message));
  }
  if (!document.getElementById("letter").open) timer = setTimeout(render, REFRESH_MS);
}

window.addEventListener("hashchange", () => { flash = null; render(); });
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("letter").addEventListener("close", render);
  render();
});
