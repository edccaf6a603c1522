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
  const response = await fetch("/manager/doctor", { credentials: "same-origin" });
  const report = await response.json().catch(() => ({}));
  list.replaceChildren();
  for (const f of report.findings || []) {
    const li = document.createElement("li");
    li.className = "finding-" + f.level;
    const icon = { ok: "✔", warning: "⚠", problem: "✖" }[f.level] || "?";
    li.textContent = icon + " " + T["manager.level_" + f.level] + " · " + f.check + ": " + f.message + (f.fix ? " → " + f.fix : "");
    list.append(li);
  }
  if (!report.findings) list.textContent = (report.error && report.error.message) || String(response.status);
});
