// FlockMQ admin dashboard. Plain JavaScript, no build step, no libraries:
// everything is read from the admin API of the node that serves the page and
// drawn with DOM APIs (the page's CSP allows no inline script or style).
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const TOKEN_KEY = "flockmq.adminToken";
  const LIST_LIMIT = 100;
  const WINDOW_MS = 15 * 60 * 1000; // what the rates endpoint keeps
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // --- token ---

  function getToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function setToken(t) {
    try {
      if (t) localStorage.setItem(TOKEN_KEY, t);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // Storage disabled: the token lasts until the page is closed.
    }
    memToken = t;
  }

  let memToken = getToken();

  // --- API ---

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, method) {
    const headers = { Accept: "application/json" };
    if (memToken) headers.Authorization = "Bearer " + memToken;
    let resp;
    try {
      resp = await fetch(path, { method: method || "GET", headers: headers, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "cannot reach the node (" + e.message + ")");
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      const msg = body && body.error ? body.error : resp.status + " " + resp.statusText;
      throw new ApiError(resp.status, msg);
    }
    return body;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== "" && v != null) q.set(k, v);
    }
    const s = q.toString();
    return s ? "?" + s : "";
  }

  // --- DOM helpers ---

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c != null) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }

  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || ""), text: text });
  }

  // fillTable replaces the rows of table's body; with none, one row says
  // empty.
  function fillTable(table, rows, empty) {
    const body = table.tBodies[0];
    if (rows.length === 0) {
      const cols = table.tHead.rows[0].cells.length;
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: cols, text: empty })));
      return;
    }
    body.replaceChildren(...rows);
  }

  function note(id, text, kind) {
    const n = $(id);
    n.textContent = text || "";
    n.className = "note " + (kind || "");
    n.hidden = !text;
  }

  // flash shows the outcome of an action for a few seconds.
  let flashTimer = null;
  function flash(text, bad) {
    const f = $("flash");
    f.textContent = text;
    f.className = "flash " + (bad ? "bad" : "ok");
    f.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      f.hidden = true;
    }, bad ? 10000 : 5000);
  }

  function td(content, cls) {
    return el("td", { class: cls }, content == null || content === "" ? "—" : content);
  }

  // --- formatting ---

  function fmtDuration(secs) {
    if (secs == null || !isFinite(secs)) return "—";
    secs = Math.max(0, Math.floor(secs));
    const d = Math.floor(secs / 86400);
    const h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60);
    const s = secs % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }

  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
    if (Number.isInteger(v)) return String(v);
    return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }

  function fmtBytes(v) {
    if (v == null || !isFinite(v)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 || v >= 100 ? Math.round(v) : Number(v.toFixed(1))) + " " + units[i];
  }

  function fmtAgo(iso) {
    if (!iso) return "";
    const t = Date.parse(iso);
    if (isNaN(t)) return "";
    return fmtDuration((Date.now() - t) / 1000) + " ago";
  }

  function protocolName(v) {
    return { 3: "3.1", 4: "3.1.1", 5: "5.0" }[v] || (v ? String(v) : "");
  }

  function utf8Len(s) {
    return new TextEncoder().encode(s).length;
  }

  // --- node ---

  function tile(label, value, hint) {
    return el("div", { class: "tile" },
      el("div", { class: "tile-label", text: label }),
      el("div", { class: "tile-value", text: value }),
      hint ? el("div", { class: "tile-hint", text: hint }) : null);
  }

  function renderNode(n, stats) {
    $("node-id").textContent = n.id;
    document.title = "FlockMQ · " + n.id;
    $("node-version").textContent = n.version;
    $("node-uptime").textContent = fmtDuration(n.uptime_seconds);
    $("node-meta").hidden = false;
    const ready = $("node-ready");
    ready.textContent = n.ready ? "ready" : "not ready";
    ready.className = "badge " + (n.ready ? "ok" : "bad");

    const reasons = $("node-reasons");
    reasons.replaceChildren(...(n.reasons || []).map((r) => el("li", { text: r })));
    reasons.hidden = n.ready || !(n.reasons && n.reasons.length);

    const raft = n.store === "raft"
      ? tile("Raft", n.raft_state || "—", "term " + (n.term || 0) + (n.leader ? " · leader " + n.leader : " · no leader"))
      : tile("Store", n.store, "single node, no raft");
    const tiles = [
      raft,
      n.store === "raft" ? tile("Log", fmtNum(n.applied_index || 0), "applied of " + fmtNum(n.commit_index || 0) + " committed") : null,
      tile("Connections", fmtNum(n.connections)),
      tile("Clients", fmtNum(n.clients)),
      tile("Sessions", fmtNum(n.sessions)),
      tile("Subscriptions", fmtNum(n.subscriptions)),
      tile("Retained", fmtNum(n.retained)),
      n.clustered || n.members ? tile("Members", fmtNum(n.members)) : null,
    ];
    if (stats) {
      const s = stats.stats || {};
      const dropped = (s.dropped_qos0_overflow || 0) + (s.dropped_queue_full || 0) +
        (s.dropped_too_large || 0) + (s.dropped_expired || 0);
      tiles.push(
        tile("Messages in", fmtNum(s.messages_received), fmtBytes(s.bytes_received) + " total"),
        tile("Messages out", fmtNum(s.messages_sent), fmtBytes(s.bytes_sent) + " total"),
        tile("Dropped", fmtNum(dropped), "queue full " + fmtNum(s.dropped_queue_full || 0)),
        tile("Connects", fmtNum(s.connects_total), fmtNum(s.auth_failures || 0) + " auth failures"));
    }
    $("node-tiles").replaceChildren(...tiles.filter(Boolean));
  }

  async function loadNode() {
    const [n, stats] = await Promise.all([api("/api/v1/node"), api("/api/v1/stats").catch(() => null)]);
    renderNode(n, stats);
    note("node-note", "");
  }

  // --- members ---

  const gossipKind = { alive: "ok", suspect: "warn", dead: "bad", left: "muted" };
  const roleKind = { leader: "accent", follower: "", nonvoter: "muted", none: "muted" };

  async function loadMembers() {
    const res = await api("/api/v1/cluster/members");
    const rows = (res.data || []).map((m) => el("tr", { class: m.self ? "self" : null },
      td(el("span", {}, m.id, m.self ? el("span", { class: "tag", text: "this node" }) : null)),
      td(m.gossip_state ? badge(m.gossip_state, gossipKind[m.gossip_state]) : el("span", { class: "muted", text: "no gossip" })),
      td(badge(m.raft_role || "none", roleKind[m.raft_role || "none"])),
      td(m.raft_role === "none" ? "" : m.voter ? "yes" : "no"),
      td(m.version),
      td(m.uptime_seconds ? fmtDuration(m.uptime_seconds) : ""),
      td(fmtNum(m.clients), "num"),
      td(m.admin_address, "mono")));
    fillTable($("members"), rows, "No members.");
    note("members-note", "");
  }

  // --- rate charts ---

  // niceMax rounds v up to 1, 2 or 5 times a power of ten, or with base
  // 1024 of a power of 1024 (for bytes).
  function niceMax(v, base) {
    if (!(v > 0)) return 1;
    if (base === 1024 && v >= 1024) {
      const unit = Math.pow(1024, Math.floor(Math.log(v) / Math.log(1024)));
      return niceMax(v / unit) * unit;
    }
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) {
      if (v <= m * p) return m * p;
    }
    return 10 * p;
  }

  function fmtSpan(ms) {
    const s = Math.round(ms / 1000);
    return s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }

  // chart draws series of samples as an SVG line chart, over the time they
  // span (at least a minute, at most the 15 the node keeps); each series
  // is {key, label, cls}. base 1024 scales for bytes.
  function chart(title, samples, series, fmt, base, intervalMs) {
    const W = 420, H = 150, L = 60, R = 10, T = 10, B = 22;
    const pw = W - L - R, ph = H - T - B;
    const times = samples.map((s) => Date.parse(s.time));
    const t1 = times.length ? times[times.length - 1] : Date.now();
    const span = Math.min(WINDOW_MS, Math.max(60000, times.length ? t1 - times[0] + intervalMs : WINDOW_MS));
    const t0 = t1 - span;
    let peak = 0;
    for (const s of samples) for (const se of series) peak = Math.max(peak, s[se.key] || 0);
    const ymax = niceMax(peak, base);
    const x = (t) => L + ((t - t0) / span) * pw;
    const y = (v) => T + ph - (Math.max(0, v) / ymax) * ph;

    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img", "aria-label": title });
    for (const f of [0, 0.5, 1]) {
      const gy = y(ymax * f);
      root.append(svg("line", { x1: L, x2: W - R, y1: gy, y2: gy, class: f === 0 ? "axis" : "grid" }));
      root.append(svg("text", { x: L - 6, y: gy + 4, class: "tick", "text-anchor": "end" }, fmt(ymax * f)));
    }
    root.append(svg("text", { x: L, y: H - 6, class: "tick" }, fmtSpan(span)));
    root.append(svg("text", { x: W - R, y: H - 6, class: "tick", "text-anchor": "end" }, "now"));

    series.forEach((se) => {
      const pts = samples.map((s, i) => x(times[i]).toFixed(1) + "," + y(s[se.key] || 0).toFixed(1));
      if (pts.length === 1) {
        const [cx, cy] = pts[0].split(",");
        root.append(svg("circle", { cx: cx, cy: cy, r: 2.5, class: "dot " + se.cls }));
      } else if (pts.length > 1) {
        root.append(svg("polyline", { points: pts.join(" "), class: "line " + se.cls }));
      }
    });

    const last = samples[samples.length - 1];
    const legend = el("div", { class: "legend" }, ...series.map((se) => el("span", { class: "key" },
      el("span", { class: "swatch " + se.cls }), se.label + " ",
      el("strong", { text: last ? fmt(last[se.key] || 0) : "—" }))));
    return el("div", { class: "chart" }, el("h3", { text: title }), legend, root);
  }

  async function loadRates() {
    const res = await api("/api/v1/rates");
    const samples = res.data || [];
    const rate = (v) => fmtNum(v) + "/s";
    const bytes = (v) => fmtBytes(v) + "/s";
    const every = (res.interval_seconds || 5) * 1000;
    $("rates-chart").replaceChildren(
      chart("Connections", samples, [
        { key: "connections", label: "connections", cls: "s0" },
        { key: "clients", label: "clients", cls: "s1" },
      ], fmtNum, 10, every),
      chart("Messages", samples, [
        { key: "messages_in_per_second", label: "in", cls: "s0" },
        { key: "messages_out_per_second", label: "out", cls: "s1" },
        { key: "dropped_per_second", label: "dropped", cls: "s2" },
      ], rate, 10, every),
      chart("Bytes", samples, [
        { key: "bytes_in_per_second", label: "in", cls: "s0" },
        { key: "bytes_out_per_second", label: "out", cls: "s1" },
      ], bytes, 1024, every));
    note("rates-note", samples.length ? "" : "No samples yet: the node takes one every " +
      (res.interval_seconds || 5) + " seconds.", "muted");
  }

  // --- clients ---

  function unreachableNote(res) {
    return res.unreachable && res.unreachable.length
      ? "Nodes that did not answer: " + res.unreachable.join(", ") + "." : "";
  }

  function countText(res, shown) {
    const total = res.meta ? res.meta.count : shown;
    return total > shown ? "(" + shown + " of " + total + ")" : "(" + total + ")";
  }

  async function kick(id) {
    if (!confirm("Disconnect client \"" + id + "\"?")) return;
    try {
      await api("/api/v1/clients/" + encodeURIComponent(id), "DELETE");
      flash("Disconnected " + id + ".");
    } catch (e) {
      if (handleAuth(e)) return;
      flash("Could not disconnect " + id + ": " + e.message, true);
    }
    loadClients().catch(() => {});
  }

  async function loadClients() {
    const prefix = $("client-search").value.trim();
    const res = await api("/api/v1/clients" + query({ prefix: prefix, limit: LIST_LIMIT }));
    const data = res.data || [];
    const rows = data.map((c) => el("tr", {},
      td(c.client_id, "mono id"),
      td(c.node),
      td(c.username),
      td(c.remote_address, "mono"),
      td(protocolName(c.protocol_version)),
      td(c.keep_alive ? c.keep_alive + "s" : "", "num"),
      el("td", { title: c.connected_at || "" }, fmtAgo(c.connected_at) || "—"),
      td(fmtNum(c.subscriptions), "num"),
      td(fmtNum(c.inflight), "num"),
      td(fmtNum(c.queued), "num"),
      el("td", { class: "actions" }, el("button", {
        type: "button", class: "danger small", text: "Kick", title: "Disconnect " + c.client_id,
        onclick: () => kick(c.client_id),
      }))));
    fillTable($("clients"), rows, prefix ? "No connected client ID starts with \"" + prefix + "\"." : "No clients connected.");
    $("clients-count").textContent = countText(res, data.length);
    const more = res.meta && res.meta.count > data.length ? "Showing the first " + data.length + ": narrow the search. " : "";
    const un = unreachableNote(res);
    note("clients-note", more + un, "warn");
  }

  // --- subscriptions ---

  function subOptions(s) {
    const o = [];
    if (s.no_local) o.push("no local");
    if (s.retain_as_published) o.push("retain as published");
    if (s.retain_handling) o.push("retain handling " + s.retain_handling);
    if (s.subscription_id) o.push("id " + s.subscription_id);
    return o.join(", ");
  }

  async function loadSubscriptions() {
    const client = $("subscription-client").value.trim();
    const res = await api("/api/v1/subscriptions" + query({ client: client, limit: LIST_LIMIT }));
    const data = res.data || [];
    const rows = data.map((s) => el("tr", {},
      td(s.client_id, "mono"),
      td(s.node),
      td(s.filter, "mono"),
      td(String(s.qos), "num"),
      td(subOptions(s), "muted")));
    fillTable($("subscriptions"), rows, client ? "No subscriptions of \"" + client + "\"." : "No subscriptions.");
    $("subscriptions-count").textContent = countText(res, data.length);
    note("subscriptions-note", unreachableNote(res), "warn");
  }

  // --- retained ---

  async function deleteRetained(topic) {
    if (!confirm("Delete the retained message on \"" + topic + "\"?")) return;
    try {
      await api("/api/v1/retained/" + encodeURIComponent(topic), "DELETE");
      flash("Deleted the retained message on " + topic + ".");
    } catch (e) {
      if (handleAuth(e)) return;
      flash("Could not delete " + topic + ": " + e.message, true);
    }
    loadRetained().catch(() => {});
  }

  function payloadCell(m) {
    if (m.payload_encoding === "base64") {
      return el("td", { class: "muted" }, "binary");
    }
    const p = m.payload || "";
    const short = p.length > 120 ? p.slice(0, 120) + "…" : p;
    return el("td", { class: "mono payload", title: p.length > 120 ? p.slice(0, 2000) : null }, short || "(empty)");
  }

  function payloadSize(m) {
    const p = m.payload || "";
    if (m.payload_encoding === "base64") {
      const pad = p.endsWith("==") ? 2 : p.endsWith("=") ? 1 : 0;
      return Math.floor(p.length * 3 / 4) - pad;
    }
    return utf8Len(p);
  }

  async function loadRetained() {
    const filter = $("retained-filter").value.trim() || "#";
    const res = await api("/api/v1/retained" + query({ filter: filter, limit: LIST_LIMIT }));
    const data = res.data || [];
    const rows = data.map((m) => el("tr", {},
      td(m.topic, "mono"),
      td(String(m.qos), "num"),
      td(fmtBytes(payloadSize(m)), "num"),
      payloadCell(m),
      el("td", { class: "actions" }, el("button", {
        type: "button", class: "danger small", text: "Delete", title: "Delete the retained message on " + m.topic,
        onclick: () => deleteRetained(m.topic),
      }))));
    fillTable($("retained"), rows, filter === "#" ? "No retained messages." : "No retained message matches " + filter + ".");
    $("retained-count").textContent = countText(res, data.length);
    note("retained-note", res.meta && res.meta.count > data.length ? "Showing the first " + data.length + ": narrow the filter." : "", "warn");
  }

  // --- refresh loop, errors and the token ---

  const sections = [
    { load: loadNode, note: "node-note" },
    { load: loadMembers, note: "members-note" },
    { load: loadRates, note: "rates-note" },
    { load: loadClients, note: "clients-note" },
    { load: loadSubscriptions, note: "subscriptions-note" },
    { load: loadRetained, note: "retained-note" },
  ];

  // handleAuth shows the token form for a 401 and reports whether e was one.
  function handleAuth(e) {
    if (!(e instanceof ApiError) || e.status !== 401) return false;
    $("token-why").textContent = memToken
      ? "The node refused the stored token: enter the current admin token."
      : "This node needs an admin token (its admin-token setting).";
    document.body.classList.add("locked");
    const form = $("token-form");
    if (form.hidden) {
      form.hidden = false;
      $("token-input").focus();
    }
    return true;
  }

  function showError(text) {
    const b = $("error");
    b.textContent = text || "";
    b.hidden = !text;
  }

  let timer = null;
  let running = false;

  async function refresh() {
    clearTimeout(timer);
    if (running) return;
    running = true;
    try {
      const results = await Promise.allSettled(sections.map((s) => s.load()));
      let unauthorized = false, unreachable = null, forbidden = null;
      results.forEach((r, i) => {
        if (r.status === "fulfilled") return;
        const e = r.reason;
        if (handleAuth(e)) unauthorized = true;
        else if (e instanceof ApiError && e.status === 0) unreachable = e;
        else if (e instanceof ApiError && e.status === 403) forbidden = e;
        else note(sections[i].note, e.message, "bad");
      });
      if (!unauthorized) {
        $("token-form").hidden = true;
        document.body.classList.remove("locked");
      }
      $("token-clear").hidden = !memToken;
      if (unreachable) {
        showError("The node does not answer: " + unreachable.message + ". Showing the last data.");
      } else if (forbidden) {
        showError("The node refuses this browser: " + forbidden.message + ".");
      } else if (unauthorized) {
        showError("");
      } else {
        showError("");
        $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      }
    } finally {
      running = false;
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function debounce(fn, ms) {
    let t = null;
    return () => {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  function reloadOne(load, noteId) {
    return debounce(() => {
      note(noteId, "");
      load().catch((e) => {
        if (!handleAuth(e)) note(noteId, e.message, "bad");
      });
    }, 250);
  }

  function init() {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token-input").value.trim();
      if (!t) return;
      setToken(t);
      $("token-input").value = "";
      $("token-form").hidden = true;
      refresh();
    });
    $("token-clear").addEventListener("click", () => {
      setToken("");
      refresh();
    });
    $("client-search").addEventListener("input", reloadOne(loadClients, "clients-note"));
    $("subscription-client").addEventListener("input", reloadOne(loadSubscriptions, "subscriptions-note"));
    $("retained-filter").addEventListener("input", reloadOne(loadRetained, "retained-note"));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
