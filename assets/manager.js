// The manager's page: void with a reason and a confirmation, then show the day again;
// printing uses the print stylesheet (an A4 daily sheet).
"use strict";
const T = JSON.parse(document.getElementById("messages").textContent);
// The store view (`?scope=store`) has the print button but neither the voids nor doctor.
document.getElementById("print")?.addEventListener("click", () => window.print());
// One listener for every void form, also those a live refresh brings.
document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("void-form")) return;
  ev.preventDefault();
  if (!confirm(T["manager.void_confirm"])) return;
  const reason = form.elements.reason.value.trim();
  const response = await fetch("/v1/redemptions/" + encodeURIComponent(form.dataset.id) + "/void", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(reason ? { reason } : {}),
  });
  if (response.ok) location.reload();
  else {
    const data = await response.json().catch(() => ({}));
    alert((data.error && data.error.message) || response.status);
  }
});

// Live: today's page follows /v1/events (the session cookie goes along) and fetches
// itself again, debounced, when a decision, a checkout or the forwarder's state changes;
// the parts marked data-live are swapped in. Not while a void reason is being typed.
const main = document.getElementById("manager");
if (main && main.dataset.livePage === "1" && window.EventSource) {
  let timer = null;
  const busy = () =>
    [...document.querySelectorAll("form.void-form input")].some((i) => i.value || i === document.activeElement);
  const refresh = async () => {
    timer = null;
    if (busy()) return later(2000);
    const response = await fetch(location.pathname + location.search, { credentials: "same-origin", cache: "no-store" })
      .catch(() => null);
    if (!response || !response.ok) return later(5000);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    // Only what changed is swapped, so a row being worked on stays put otherwise.
    for (const el of document.querySelectorAll("[data-live]")) {
      const fresh = doc.getElementById(el.id);
      if (fresh && fresh.outerHTML !== el.outerHTML) el.replaceWith(document.adoptNode(fresh));
    }
    main.dataset.refreshed = String(Number(main.dataset.refreshed || 0) + 1);
  };
  const later = (ms) => {
    if (timer === null) timer = setTimeout(refresh, ms);
  };
  const source = new EventSource("/v1/events");
  const state = document.getElementById("live-state");
  source.onopen = () => {
    document.body.dataset.live = "1";
    if (state) state.hidden = false;
  };
  source.onerror = () => {
    if (state) state.hidden = true;
  };
  for (const name of ["decision", "checkout", "sync"]) source.addEventListener(name, () => later(400));
}

// `redeemd doctor` on demand: each finding with its level (icon and word) and what to do.
document.getElementById("doctor-run")?.addEventListener("click", async () => {
  const list = document.getElementById("doctor");
  list.replaceChildren();
  const wait = document.createElement("li");
  wait.textContent = T["manager.doctor_running"];
  list.append(wait);
  // In the page's language: each finding's `text` (the English fields are for scripts).
  const lang = encodeURIComponent(document.documentElement.lang || "");
  const response = await fetch("/manager/doctor?lang=" + lang, { credentials: "same-origin" });
  const report = await response.json().catch(() => ({}));
  list.replaceChildren();
  for (const f of report.findings || []) {
    const li = document.createElement("li");
    const t = f.text || {};
    li.className = "finding-" + f.status;
    const icon = { ok: "✔", warning: "⚠", problem: "✖" }[f.status] || "?";
    li.textContent = icon + " " + (T["manager.level_" + f.status] || t.level) + " · " + t.check + ": " + t.message + (t.fix ? " → " + t.fix : "");
    list.append(li);
  }
  if (report.summary) {
    const li = document.createElement("li");
    li.textContent = report.summary;
    list.append(li);
  }
  if (!report.findings) list.textContent = (report.error && report.error.message) || String(response.status);
});
