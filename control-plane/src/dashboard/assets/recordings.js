// WaaS dashboard: a replay's progress, live. The replay page (replay.html) carries the URL of
// its progress JSON in `data-progress`; while the replay runs or is paused this asks for it
// every half second and moves the bar, the counts, the state and the buttons, no reload. No
// inline scripts (the Content-Security-Policy forbids them), no dependencies.
"use strict";
(() => {
  const box = document.getElementById("replay");
  if (!box || !box.dataset.progress) return;
  const INTERVAL_MS = 500;
  const $ = (id) => document.getElementById(id);
  const show = (r) => {
    $("replay-state").textContent = r.state;
    $("replay-state").className = `status ${r.state}`;
    $("replay-published").textContent = r.published;
    $("replay-total").textContent = r.total;
    $("replay-error").textContent = r.error ?? "";
    const bar = $("replay-progress");
    bar.max = Math.max(r.total, 1);
    bar.value = r.total > 0 ? r.published : 1;
    for (const form of box.querySelectorAll("form[data-when]")) {
      form.hidden = !form.dataset.when.split(" ").includes(r.state);
    }
    box.dataset.live = String(r.live);
  };
  const poll = async () => {
    try {
      const res = await fetch(box.dataset.progress, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!res.ok || !(res.headers.get("content-type") ?? "").includes("application/json")) return;
      const r = await res.json();
      show(r);
      if (r.live) setTimeout(poll, INTERVAL_MS);
    } catch {
      setTimeout(poll, INTERVAL_MS * 4);
    }
  };
  if (box.dataset.live === "true") setTimeout(poll, INTERVAL_MS);
})();
