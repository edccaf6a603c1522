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
  const response = await fetch("/demo/upstream", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  const data = await response.json();
  const pill = document.getElementById("upstream-state");
  pill.textContent = T["demo.upstream"] + ": " + (data.online ? T["demo.upstream_online"] : T["demo.upstream_offline"]);
  pill.className = "pill " + (data.online ? "ok" : "warn");
});

// What the terminal made of the last scan, so the demo can be followed on one page.
function show(ok, title, detail) {
  const v = document.getElementById("verdict");
  v.hidden = false;
  v.className = "verdict " + (ok ? "accepted" : "rejected");
  document.getElementById("verdict-icon").textContent = ok ? "✔" : "✖";
  document.getElementById("verdict-title").textContent = title;
  document.getElementById("verdict-detail").textContent = detail;
}
const events = new EventSource("/v1/events");
events.onopen = () => { document.body.dataset.live = "1"; };
// A page kept in the back/forward cache would otherwise hold its stream open; browsers
// allow only a few connections per host.
addEventListener("pagehide", () => events.close());
events.addEventListener("decision", (ev) => {
  const d = JSON.parse(ev.data);
  const ok = d.decision === "accepted";
  show(ok, ok ? T["decision.accepted_title"] : T["decision.rejected_title"],
    document.documentElement.lang === document.body.dataset.terminalLang ? d.message
      : ((d.messages && d.messages[document.documentElement.lang]) || T["reason." + d.reason] || d.reason || ""));
});
events.addEventListener("scan", (ev) => {
  const s = JSON.parse(ev.data);
  if (s.ignored === "no_checkout") show(false, T["decision.rejected_title"], T["demo.no_checkout"]);
});

// The live (CP2) code is sample 6: signed again every 15 s, as the holder app does.
setInterval(async () => {
  const button = document.querySelector("button.sample[data-sample='6']");
  if (!button) return;
  const response = await fetch("/demo/live", { credentials: "same-origin" });
  if (!response.ok) return;
  const live = await response.json();
  button.dataset.code = live.code;
  button.querySelector(".qr").innerHTML = live.svg;
}, 15000);
