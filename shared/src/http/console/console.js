// Hookhub console: plain DOM code, no framework and no build step. Every value from the API is
// put in the page as text (never as HTML). The admin key lives in sessionStorage only.
"use strict";

const KEY = "hookhub.adminKey";
const PAGE_SIZE = 25;
const REFRESH_MS = 5000;

// Config fields each verification scheme needs (the provider catalog, shared/src/verify).
// `secret` fields are sent as `secret`; optional ones are marked with `?`.
const SCHEMES = {
  "github": ["secret"], "stripe": ["secret", "tolerance_seconds?"], "slack": ["secret", "tolerance_seconds?"],
  "shopify": ["secret"], "bettermode": ["secret", "tolerance_seconds?"], "intercom": ["secret"],
  "twilio": ["secret"], "zoom": ["secret", "tolerance_seconds?"], "linear": ["secret", "tolerance_seconds?"],
  "sendgrid": ["public_key", "tolerance_seconds?"], "meta": ["secret", "verify_token"], "dropbox": ["secret"],
  "spika": ["value", "header?"], "outverse": ["auth.scheme", "auth.header?", "auth.value?"],
  "featureos": ["auth.scheme", "auth.header?", "auth.value?"], "standard-webhooks": ["secret", "tolerance_seconds?"],
  "hmac": ["header", "algorithm", "encoding", "prefix?", "secret", "timestamp_header?", "template?", "tolerance_seconds?"],
  "token": ["header", "value"], "basic": ["username", "password"], "none": [],
};
const SECRET_FIELDS = ["secret", "value", "password", "verify_token", "auth.value"];
const NUMBER_FIELDS = ["tolerance_seconds"];

let timer = null;          // the current page's auto-refresh
let statsTimer = null;

// ----- small DOM helpers -----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (id) => document.getElementById(id);
const badge = (text) => h("span", { class: "badge " + text }, text);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const enc = encodeURIComponent;

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty || "Nothing here.");
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function flash(message, info) {
  const el = $("flash");
  el.textContent = message || "";
  el.className = info ? "info" : "";
  el.hidden = !message;
}

// ----- API -----

class ApiError extends Error {
  constructor(status, code, message) { super(code + ": " + message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = { "Authorization": "Bearer " + sessionStorage.getItem(KEY) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!res.ok) {
    const err = json && json.error ? json.error : { code: "http_" + res.status, message: text || res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  return json;
}

// Runs an action, showing its error in the flash area; a 401 logs out.
async function guarded(fn) {
  try { return await fn(); } catch (e) {
    if (e instanceof ApiError && e.status === 401) { logout(e.message); return undefined; }
    flash(e.message);
    return undefined;
  }
}

// ----- login -----

function showLogin(message) {
  $("login").hidden = false;
  $("view").hidden = true;
  $("nav").hidden = $("stats").hidden = $("logout").hidden = true;
  flash(message);
  $("key").focus();
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  clearInterval(timer); clearInterval(statsTimer);
  showLogin(message);
}

async function login(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  sessionStorage.setItem(KEY, key);
  try {
    await api("GET", "/v1/stats?window=1h");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    showLogin(e.message);
    return;
  }
  $("key").value = "";
  flash("");
  start();
}

function start() {
  $("login").hidden = true;
  $("view").hidden = false;
  $("nav").hidden = $("stats").hidden = $("logout").hidden = false;
  refreshStats();
  clearInterval(statsTimer);
  statsTimer = setInterval(refreshStats, 15000);
  if (!location.hash) location.hash = "#/events"; else route();
}

async function refreshStats() {
  const s = await guarded(() => api("GET", "/v1/stats?window=1h"));
  if (!s) return;
  const plus = s.capped ? "+" : "";
  $("stat-received").textContent = s.received + plus + " received";
  $("stat-delivered").textContent = s.delivered + plus + " delivered";
  $("stat-failing").textContent = s.failing + plus + " failing";
}

// ----- routing -----

function route() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  clearInterval(timer);
  flash("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = parts[0] || "events";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  const view = $("view");
  view.replaceChildren();
  if (page === "events" && parts[1]) return eventPage(view, parts[1]);
  if (page === "subscriptions" && parts[1]) return subscriptionPage(view, parts[1]);
  if (page === "subscriptions") return subscriptionsPage(view);
  if (page === "sources") return sourcesPage(view);
  return eventsPage(view);
}

// ----- events -----

const listState = { source: "", type: "", state: "", cursors: [], auto: true };

async function eventsPage(view) {
  const sources = (await guarded(() => api("GET", "/v1/sources"))) || { data: [] };
  const ids = ["hookhub", ...sources.data.map((s) => s.id)];
  const src = h("select", { id: "f-source", onchange: (e) => { listState.source = e.target.value; reset(); } },
    h("option", { value: "" }, "all sources"), ids.map((id) => h("option", { value: id, selected: id === listState.source }, id)));
  const type = h("input", { id: "f-type", placeholder: "event type", value: listState.type });
  const state = h("select", { id: "f-state", onchange: (e) => { listState.state = e.target.value; load(); } },
    ["", "delivered", "failing", "pending"].map((s) => h("option", { value: s, selected: s === listState.state }, s || "any state")));
  const auto = h("input", { type: "checkbox", id: "f-auto", checked: listState.auto,
    onchange: (e) => { listState.auto = e.target.checked; schedule(); } });
  const body = h("div", { id: "events" });
  const pager = h("div", { class: "pager" });
  view.append(h("h1", {}, "Events"),
    h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); listState.type = type.value.trim(); reset(); } },
      h("label", {}, "Source ", src), h("label", {}, "Type ", type), h("label", {}, "State ", state),
      h("button", { type: "submit" }, "Filter"), h("label", {}, auto, " auto-refresh")),
    body, pager);

  function reset() { listState.cursors = []; load(); }
  function schedule() {
    clearInterval(timer);
    // Only the first page refreshes: an older page does not move under the reader.
    if (listState.auto && !listState.cursors.length) timer = setInterval(load, REFRESH_MS);
  }
  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (listState.source) q.set("source", listState.source);
    if (listState.type) q.set("type", listState.type);
    const before = listState.cursors[listState.cursors.length - 1];
    if (before) q.set("before", before);
    const page = await guarded(() => api("GET", "/v1/events?" + q));
    if (!page) return;
    let events = page.data;
    const states = {};
    if (events.length) {
      const st = await guarded(() => api("GET", "/v1/events/states?ids=" + events.map((e) => enc(e.id)).join(",")));
      for (const s of (st ? st.data : [])) states[s.id] = s.state;
    }
    // The state filter applies to the page read (states are computed per page).
    if (listState.state) events = events.filter((e) => states[e.id] === listState.state);
    body.replaceChildren(table(["Received", "Event", "Source", "Type", "Size", "State"], events.map((e) =>
      h("tr", { "data-event": e.id },
        h("td", {}, when(e.received_at)),
        h("td", { class: "mono" }, h("a", { href: "#/events/" + enc(e.id) }, e.id)),
        h("td", {}, e.source_id), h("td", {}, e.event_type), h("td", {}, e.size + " B"),
        h("td", {}, states[e.id] ? badge(states[e.id]) : ""))), "No events."));
    pager.replaceChildren(
      h("button", { type: "button", disabled: !listState.cursors.length,
        onclick: () => { listState.cursors.pop(); load(); schedule(); } }, "← Newer"),
      h("button", { type: "button", disabled: !page.next_cursor,
        onclick: () => { listState.cursors.push(page.next_cursor); load(); schedule(); } }, "Older →"),
      h("span", { class: "hint" }, "page " + (listState.cursors.length + 1)));
  }
  await load();
  schedule();
}

function prettyBody(ev) {
  if (ev.body_encoding === "base64") return { label: "Body (base64: not UTF-8)", text: ev.body };
  try { return { label: "Body (JSON)", text: JSON.stringify(JSON.parse(ev.body), null, 2) }; } catch (_) {
    return { label: "Body", text: ev.body };
  }
}

async function eventPage(view, id) {
  const ev = await guarded(() => api("GET", "/v1/events/" + enc(id)));
  if (!ev) return;
  const body = prettyBody(ev);
  const timeline = h("div", { id: "attempts" });
  const replays = h("div", { class: "actions", id: "replay" });
  view.append(h("p", {}, h("a", { href: "#/events" }, "← Events")),
    h("h1", { class: "mono" }, ev.id),
    h("dl", { class: "meta" },
      h("dt", {}, "Source"), h("dd", {}, ev.source_id), h("dt", {}, "Type"), h("dd", {}, ev.event_type),
      h("dt", {}, "Received"), h("dd", {}, when(ev.received_at)), h("dt", {}, "Dedup key"), h("dd", { class: "mono" }, ev.dedup_key),
      h("dt", {}, "Size"), h("dd", {}, ev.size + " B")),
    h("h2", {}, "Deliveries"), replays, timeline,
    h("h2", {}, "Headers"),
    table(["Name", "Value"], Object.entries(ev.headers).map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "mono" }, v)))),
    h("h2", {}, body.label), h("pre", { id: "body" }, body.text));

  async function replay(subscriptionId) {
    const res = await guarded(() => api("POST", "/v1/events/" + enc(id) + "/replay", subscriptionId ? { subscription_id: subscriptionId } : {}));
    if (res) flash("Replay queued to " + (res.subscriptions.join(", ") || "no subscription"), true);
    load();
  }
  let shown = null;
  async function load() {
    const attempts = await guarded(() => api("GET", "/v1/events/" + enc(id) + "/attempts"));
    // Re-rendered only on a change, so a button is not replaced under the pointer.
    if (!attempts || JSON.stringify(attempts.data) === shown) return;
    shown = JSON.stringify(attempts.data);
    const rows = [...attempts.data].sort((a, b) => a.started_at.localeCompare(b.started_at));
    timeline.replaceChildren(table(["Started", "Subscription", "#", "State", "Status", "Duration", "Error", "Response"],
      rows.map((a) => h("tr", { class: "attempt" },
        h("td", {}, when(a.started_at)),
        h("td", { class: "mono" }, h("a", { href: "#/subscriptions/" + enc(a.subscription_id) }, a.subscription_id)),
        h("td", {}, a.attempt), h("td", {}, badge(a.state)), h("td", {}, a.status_code ?? "–"),
        h("td", {}, a.duration_ms + " ms"), h("td", { class: "mono" }, a.error || ""),
        h("td", { class: "mono" }, (a.response_excerpt || "").slice(0, 200)))), "No attempts yet."));
    const subs = [...new Set(rows.map((a) => a.subscription_id))];
    replays.replaceChildren(h("button", { type: "button", class: "primary", onclick: () => replay(null) }, "Replay to all"),
      ...subs.map((s) => h("button", { type: "button", "data-subscription": s, onclick: () => replay(s) }, "Replay to " + s)));
  }
  await load();
  timer = setInterval(load, 2000);
}

// ----- subscriptions -----

async function subscriptionsPage(view) {
  const list = h("div", { id: "subscriptions" });
  const secretOut = h("p", { id: "secret-out" });
  view.append(h("h1", {}, "Subscriptions"), secretOut, list);
  async function showSecret(s, rotate) {
    const res = await guarded(() => rotate
      ? api("POST", "/v1/subscriptions/" + enc(s.id) + "/secret/rotate", {})
      : api("GET", "/v1/subscriptions/" + enc(s.id) + "/secret"));
    if (res) secretOut.replaceChildren((rotate ? "New secret of " : "Secret of ") + s.id + ": ", h("span", { class: "secret" }, res.secret));
  }
  async function toggle(s) {
    if (await guarded(() => api("PATCH", "/v1/subscriptions/" + enc(s.id), { enabled: !s.enabled }))) load();
  }
  async function load() {
    const subs = await guarded(() => api("GET", "/v1/subscriptions"));
    if (!subs) return;
    list.replaceChildren(table(["Subscription", "URL", "Sources / types", "Filter", "State", "Health", ""], subs.data.map((s) =>
      h("tr", { "data-subscription": s.id },
        h("td", {}, h("a", { class: "mono", href: "#/subscriptions/" + enc(s.id) }, s.id), s.label ? h("div", { class: "hint" }, s.label) : ""),
        h("td", { class: "mono" }, s.url),
        h("td", {}, (s.sources.join(", ") || "all sources") + " / " + (s.event_types.join(", ") || "all types")),
        h("td", { class: "mono" }, s.filter || "–"),
        h("td", {}, badge(s.status || (s.enabled ? "enabled" : "disabled")), s.disabled_reason ? h("div", { class: "hint" }, s.disabled_reason) : ""),
        h("td", {}, badge(s.health.circuit), " ", s.health.consecutive_failures + " failing in a row",
          h("div", { class: "hint" }, "last success " + when(s.health.last_success_at))),
        h("td", { class: "actions" },
          h("button", { type: "button", onclick: () => toggle(s) }, s.enabled ? "Disable" : "Enable"),
          h("button", { type: "button", onclick: () => showSecret(s, false) }, "Reveal secret"),
          h("button", { type: "button", onclick: () => showSecret(s, true) }, "Rotate secret")))), "No subscriptions."));
  }
  await load();
  timer = setInterval(load, REFRESH_MS * 2);
}

async function subscriptionPage(view, id) {
  const s = await guarded(() => api("GET", "/v1/subscriptions/" + enc(id)));
  if (!s) return;
  const list = h("div", { id: "sub-attempts" });
  view.append(h("p", {}, h("a", { href: "#/subscriptions" }, "← Subscriptions")),
    h("h1", { class: "mono" }, s.id),
    h("dl", { class: "meta" }, h("dt", {}, "URL"), h("dd", { class: "mono" }, s.url),
      h("dt", {}, "State"), h("dd", {}, badge(s.status || (s.enabled ? "enabled" : "disabled"))),
      h("dt", {}, "Circuit"), h("dd", {}, badge(s.health.circuit))),
    h("h2", {}, "Latest attempts"), list);
  async function load() {
    const attempts = await guarded(() => api("GET", "/v1/subscriptions/" + enc(id) + "/attempts?limit=50"));
    if (!attempts) return;
    list.replaceChildren(table(["Started", "Event", "#", "State", "Status", "Duration", "Error"], attempts.data.map((a) =>
      h("tr", {}, h("td", {}, when(a.started_at)),
        h("td", { class: "mono" }, h("a", { href: "#/events/" + enc(a.event_id) }, a.event_id)),
        h("td", {}, a.attempt), h("td", {}, badge(a.state)), h("td", {}, a.status_code ?? "–"),
        h("td", {}, a.duration_ms + " ms"), h("td", { class: "mono" }, a.error || ""))), "No attempts."));
  }
  await load();
  timer = setInterval(load, REFRESH_MS);
}

// ----- sources -----

function ingestUrl(id) { return location.origin + "/webhooks/" + enc(id); }

async function copy(text) {
  try { await navigator.clipboard.writeText(text); flash("Copied " + text, true); } catch (_) { flash("Copy by hand: " + text, true); }
}

// The field holding a scheme's shared secret (`secret`, a token's `value`, …), if any.
function secretField(scheme) {
  return (SCHEMES[scheme] || []).map((f) => f.replace("?", "")).find((f) => SECRET_FIELDS.includes(f));
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] = o[k] || {};
  o[keys[keys.length - 1]] = value;
}

async function sourcesPage(view) {
  const list = h("div", { id: "sources" });
  const scheme = h("select", { id: "new-scheme", onchange: () => fields() }, Object.keys(SCHEMES).map((s) => h("option", { value: s }, s)));
  const fieldBox = h("div", { id: "scheme-fields" });
  // The id's rules are the API's (its 422 is shown as is).
  const idInput = h("input", { id: "new-id", required: true, placeholder: "github" });
  const form = h("form", { class: "card", id: "new-source", onsubmit: create },
    h("label", { for: "new-id" }, "Source id"), idInput,
    h("label", { for: "new-scheme" }, "Verification scheme"), scheme, fieldBox,
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Create source")));
  view.append(h("h1", {}, "Sources"), list, h("h2", {}, "New source"), form);

  function fields() {
    fieldBox.replaceChildren(...SCHEMES[scheme.value].map((f) => {
      const name = f.replace("?", "");
      const optional = f.endsWith("?");
      const secret = SECRET_FIELDS.includes(name);
      return h("div", {}, h("label", { for: "f-" + name }, name + (optional ? " (optional)" : "")),
        h("input", { id: "f-" + name, name, type: secret ? "password" : (NUMBER_FIELDS.includes(name) ? "number" : "text"),
          required: !optional, autocomplete: "off" }));
    }));
  }
  async function create(e) {
    e.preventDefault();
    const verify = { scheme: scheme.value };
    for (const input of fieldBox.querySelectorAll("input")) {
      if (input.value === "") continue;
      setPath(verify, input.name, NUMBER_FIELDS.includes(input.name) ? Number(input.value) : input.value);
    }
    const res = await guarded(() => api("POST", "/v1/sources", { id: idInput.value.trim(), verify }));
    if (res) { flash("Created source " + res.id + "; its ingest URL: " + ingestUrl(res.id), true); form.reset(); fields(); load(); }
  }
  async function rotate(s, field) {
    const secret = prompt("New " + field + " for " + s.id + " (the provider must use it from now on):");
    if (!secret) return;
    // The other fields go back as listed: their redacted secrets (***) keep the stored ones.
    const verify = JSON.parse(JSON.stringify(s.verify));
    if (field === "secret") delete verify.secrets;
    setPath(verify, field, secret);
    const res = await guarded(() => api("PATCH", "/v1/sources/" + enc(s.id), { verify }));
    if (res) flash("Secret of " + s.id + " replaced", true);
  }
  async function load() {
    const sources = await guarded(() => api("GET", "/v1/sources"));
    if (!sources) return;
    list.replaceChildren(table(["Source", "Scheme", "Ingest URL", "Created", ""], sources.data.map((s) =>
      h("tr", { "data-source": s.id }, h("td", { class: "mono" }, s.id), h("td", {}, s.verify.scheme),
        h("td", { class: "mono" }, ingestUrl(s.id), " ", h("button", { type: "button", onclick: () => copy(ingestUrl(s.id)) }, "Copy")),
        h("td", {}, when(s.created_at)),
        h("td", {}, secretField(s.verify.scheme)
          ? h("button", { type: "button", onclick: () => rotate(s, secretField(s.verify.scheme)) }, "Rotate secret") : ""))), "No sources yet."));
  }
  fields();
  await load();
}

// ----- boot -----

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(KEY)) start(); else showLogin();
});
