// WaaS dashboard, Servers page: asks /dashboard/servers.json every data-refresh-ms and redraws
// the servers' and nodes' tables, so servers appear, change latency and go offline without a
// reload. Rows are built with textContent only: nothing from the server is parsed as HTML.
"use strict";
(() => {
  const live = document.getElementById("servers-live");
  if (!live) return;
  const source = live.dataset.source;
  const every = Math.max(250, Number(live.dataset.refreshMs) || 2000);
  const status = document.getElementById("servers-status");

  const ago = (then, now) => {
    const s = Math.floor(Math.max(0, now - then) / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h`;
    return `${Math.floor(s / 86400)} d`;
  };
  const latency = (ms) => (ms == null ? "—" : ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`);

  const cell = (row, text, className) => {
    const td = row.insertCell();
    if (className) td.className = className;
    if (text instanceof Node) td.append(text);
    else td.textContent = text;
    return td;
  };
  const el = (tag, text, className) => {
    const e = document.createElement(tag);
    e.textContent = text;
    if (className) e.className = className;
    return e;
  };
  const state = (online) => el("span", online ? "online" : "offline", "state");

  /** Replaces the rows of table `id` (hidden when empty, with its "empty" note shown). */
  const fill = (id, items, draw) => {
    const table = document.getElementById(id);
    const empty = document.getElementById(`${id}-empty`);
    if (!table) return;
    const body = table.tBodies[0];
    const rows = items.map((item) => {
      const row = document.createElement("tr");
      draw(row, item);
      return row;
    });
    body.replaceChildren(...rows);
    table.hidden = items.length === 0;
    if (empty) empty.hidden = items.length !== 0;
  };

  const draw = (data) => {
    const now = data.now;
    fill("servers", data.servers, (row, s) => {
      row.dataset.connection = s.connection_id;
      row.className = s.online ? "online" : "offline";
      cell(row, state(s.online));
      cell(row, s.name ?? el("span", "(unnamed)", "muted"), "name");
      const link = el("a", s.app);
      link.href = `/dashboard/apps/${encodeURIComponent(s.app)}`;
      cell(row, link);
      cell(row, el("code", s.node));
      cell(row, s.region || "—");
      const since = `${ago(s.connected_at, now)} ago`;
      cell(row, s.disconnected_at == null ? since : `${since}, left ${ago(s.disconnected_at, now)} ago`)
        .title = new Date(s.connected_at).toISOString();
      cell(row, s.online ? latency(s.latency_ms) : "—", "latency");
    });
    if (data.nodes) {
      fill("nodes", data.nodes, (row, n) => {
        row.dataset.node = n.node;
        row.className = n.online ? "online" : "offline";
        cell(row, state(n.online));
        cell(row, el("code", n.node));
        cell(row, n.region || "—");
        cell(row, n.version);
        cell(row, String(n.connections));
        cell(row, String(n.servers));
        cell(row, `${ago(n.last_seen, now)} ago`).title = new Date(n.last_seen).toISOString();
      });
    }
  };

  const poll = async () => {
    try {
      const res = await fetch(source, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (res.redirected || res.status === 401) {
        // The session ended: the sign-in page, as any other page would lead to.
        window.location.assign("/dashboard/login");
        return;
      }
      if (!res.ok) throw new Error(`status ${res.status}`);
      draw(await res.json());
      status.textContent = "Live";
      status.classList.remove("stale");
    } catch (e) {
      status.textContent = "Not updating: the dashboard is unreachable";
      status.classList.add("stale");
    }
    setTimeout(poll, every);
  };
  setTimeout(poll, every);
})();
