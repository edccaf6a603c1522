// The demo's virtual scanner: a click sends the coupon's text to the daemon, which
// writes it into a pseudo-terminal as a scanner would; the cashier screen shows the
// decision. The switch takes the demo upstream offline and back.
"use strict";
const T = JSON.parse(document.getElementById("messages").textContent);
for (const button of document.querySelectorAll("button.sample")) {
  button.addEventListener("click", async () => {
    const response = await fetch("/demo/scan", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: button.dataset.code }),
    });
    const mark = button.querySelector(".scanned");
    mark.hidden = !response.ok;
    setTimeout(() => { mark.hidden = true; }, 1500);
  });
}
document.getElementById("toggle-upstream").addEventListener("click", async () => {
  const response = await fetch("/demo/upstream", { method: "POST", credentials: "same-origin" });
  const data = await response.json();
  const pill = document.getElementById("upstream-state");
  pill.textContent = T["demo.upstream"] + ": " + (data.online ? T["demo.upstream_online"] : T["demo.upstream_offline"]);
  pill.className = "pill " + (data.online ? "ok" : "warn");
});
