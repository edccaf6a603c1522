// The manager's page: void with a reason and a confirmation, then show the day again;
// printing uses the print stylesheet (an A4 daily sheet).
"use strict";
const T = JSON.parse(document.getElementById("messages").textContent);
document.getElementById("print").addEventListener("click", () => window.print());
for (const form of document.querySelectorAll("form.void-form")) {
  form.addEventListener("submit", async (ev) => {
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
}

// `redeemd doctor` on demand: each finding with its level (icon and word) and what to do.
document.getElementById("doctor-run").addEventListener("click", async () => {
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
