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
