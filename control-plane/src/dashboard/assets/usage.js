// WaaS dashboard, Usage page: fetches the app's usage as JSON and draws each series as a small
// SVG chart, again every few seconds for the live section, so the charts move without a reload.
// No library: the charts are a polyline and an area over the points.
"use strict";
(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 300;
  const H = 90;

  const sum = (points, key) => points.reduce((n, p) => n + (p[key] || 0), 0);
  const fmt = (n) => n.toLocaleString("en-US");
  const time = (secs, step) => {
    const iso = new Date(secs * 1000).toISOString();
    return step === "day" ? iso.slice(0, 10) : iso.slice(11, 16);
  };

  function svg(name, attrs) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  // The polyline of `values` scaled to `max`.
  function coords(values, max) {
    const dx = values.length > 1 ? W / (values.length - 1) : W;
    return values.map((v, i) => `${(i * dx).toFixed(1)},${(H - 4 - (v / max) * (H - 10)).toFixed(1)}`);
  }

  function draw(figure, series) {
    const key = figure.dataset.series;
    const errorsKey = figure.dataset.errors;
    const values = series.points.map((p) => p[key] || 0);
    const errors = errorsKey ? series.points.map((p) => p[errorsKey] || 0) : null;
    const peak = Math.max(0, ...values);
    const max = Math.max(1, peak);
    // Connections are a level: the greatest. The others are counts: their total.
    const total = key === "connections" ? peak : values.reduce((a, b) => a + b, 0);
    figure.dataset.total = String(total);
    figure.dataset.points = values.join(",");
    figure.replaceChildren();
    const caption = document.createElement("figcaption");
    const title = document.createElement("span");
    title.textContent = figure.dataset.title;
    const figure_total = document.createElement("b");
    figure_total.className = "total";
    const errorTotal = errors ? errors.reduce((a, b) => a + b, 0) : 0;
    figure_total.textContent = (key === "connections" ? "max " : "") + fmt(total) +
      (errors ? ` (${fmt(errorTotal)} errors)` : "");
    caption.append(title, figure_total);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    const label = svg("title", {});
    label.textContent = `${figure.dataset.title}: ${fmt(total)}, peak ${fmt(peak)} per ${series.step}`;
    chart.append(label);
    const line = coords(values, max);
    chart.append(svg("polygon", { class: "area", points: `0,${H} ${line.join(" ")} ${W},${H}` }));
    chart.append(svg("polyline", { class: "line", points: line.join(" ") }));
    if (errors && errors.some((e) => e > 0)) {
      chart.append(svg("polyline", { class: "errors", points: coords(errors, max).join(" ") }));
    }
    const axis = document.createElement("div");
    axis.className = "axis";
    const first = series.points[0];
    const last = series.points[series.points.length - 1];
    for (const text of [first ? time(first.start, series.step) : "", `max ${fmt(peak)}`, last ? time(last.start, series.step) : ""]) {
      const span = document.createElement("span");
      span.textContent = text;
      axis.append(span);
    }
    figure.append(caption, chart, axis);
  }

  function figure(id, value, errors) {
    const el = document.getElementById(id);
    if (!el) return;
    el.dataset.value = String(value);
    el.textContent = fmt(value) + (errors === undefined ? "" : ` (${fmt(errors)})`);
  }

  async function load(section) {
    const response = await fetch(section.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.redirected || !response.ok) throw new Error(`HTTP ${response.status}`);
    const series = await response.json();
    for (const f of section.querySelectorAll("figure.chart")) draw(f, series);
    return series;
  }

  async function live(section) {
    const status = document.getElementById("live-status");
    try {
      const s = await load(section);
      figure("live-connections", s.connections_now);
      figure("live-published", sum(s.points, "published"));
      figure("live-delivered", sum(s.points, "delivered"));
      figure("live-webhooks", sum(s.points, "webhooks"), sum(s.points, "webhook_errors"));
      figure("live-requests", sum(s.points, "requests"), sum(s.points, "request_errors"));
      section.dataset.updated = String(Date.now());
      status.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
      status.classList.remove("bad");
    } catch (e) {
      status.textContent = `not updated: ${e.message}`;
      status.classList.add("bad");
    }
    setTimeout(() => live(section), Number(section.dataset.refreshMs) || 5000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const liveSection = document.getElementById("usage-live");
    if (liveSection) live(liveSection);
    const history = document.getElementById("usage-history");
    if (history) load(history).catch(() => {});
  });
})();
