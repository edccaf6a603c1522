// The cashier screen: the current checkout and each decision as it happens, live over
// /v1/events (EventSource reconnects by itself). Amounts are integers in minor units
// (fen) end to end: typed text is parsed exactly, never through a float.
"use strict";
const T = JSON.parse(document.getElementById("messages").textContent);
const DIGITS = 2;
const $ = (id) => document.getElementById(id);
let current = null; // the checkout shown
let status = null;

function t(key, values) {
  let text = T[key] || key;
  for (const [name, value] of Object.entries(values || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}
// The decision's message is worded in the terminal's language; a page in the other one
// words the reason from its own table (without the details the terminal added).
const TERMINAL_LANG = document.body.dataset.terminalLang;
function words(d) {
  if (document.documentElement.lang === TERMINAL_LANG) return d.message;
  if (d.decision === "accepted") return t("decision.accepted", { amount: money(d.discount) });
  return t("reason." + d.reason);
}
function money(minor) {
  const negative = minor < 0;
  const s = String(Math.abs(minor)).padStart(DIGITS + 1, "0");
  return (negative ? "-" : "") + s.slice(0, s.length - DIGITS) + "." + s.slice(s.length - DIGITS);
}
// "58", "58.5", "58.50" -> 5850; anything else -> null.
function parseAmount(text) {
  const m = /^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || "").padEnd(DIGITS, "0"));
}
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || response.status;
    throw new Error(message);
  }
  return data;
}

// --- sound: a short tone, high for accepted, low for refused (off by default) ---
let audio = null;
function beep(ok) {
  if (!$("sound").checked) return;
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = ok ? 1320 : 330;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + (ok ? 0.12 : 0.35));
  } catch (_) { /* no audio device: silent */ }
}
$("sound").checked = localStorage.getItem("redeemd.sound") === "1";
$("sound").addEventListener("change", () => localStorage.setItem("redeemd.sound", $("sound").checked ? "1" : "0"));

// --- status strip ---
function pill(el, text, kind) {
  el.textContent = text;
  el.className = "pill" + (kind ? " " + kind : "");
}
function renderStatus() {
  if (!status) return;
  const sc = status.scanner || {};
  const scanText = { connected: "status.scanner_connected", disconnected: "status.scanner_disconnected", none: "status.scanner_none" }[sc.state] || "status.scanner_none";
  pill($("st-scanner"), (sc.state === "connected" ? "✔ " : sc.state === "disconnected" ? "✖ " : "") + t("status.scanner") + ": " + t(scanText),
    sc.state === "connected" ? "ok" : sc.state === "disconnected" ? "bad" : "");
  const sync = status.sync ? status.sync.state : null;
  const unsynced = t("status.unsynced", { count: status.unsynced || 0 });
  if (sync === "online") pill($("st-sync"), "✔ " + t("status.online") + " · " + unsynced, "ok");
  else if (sync === "paused") pill($("st-sync"), "⚠ " + t("status.paused") + " · " + unsynced, "bad");
  else if (sync) pill($("st-sync"), "⚠ " + t("status.offline") + " · " + unsynced, "warn");
  else pill($("st-sync"), unsynced, ""); // no upstream configured (a terminal set up by hand)
  const rs = status.ruleset;
  if (!rs) pill($("st-ruleset"), "✖ " + t("status.ruleset_none"), "bad");
  else {
    const expires = Date.parse(rs.expires_at);
    const left = expires - Date.now();
    const base = t("status.ruleset") + " v" + rs.version + " · " + t("status.ruleset_age", { hours: Math.floor((rs.age_seconds || 0) / 3600) });
    if (left <= 0) pill($("st-ruleset"), "✖ " + base + " · " + t("status.ruleset_expired"), "bad");
    else if (left < 6 * 3600 * 1000) pill($("st-ruleset"), "⚠ " + base + " · " + t("status.ruleset_expires_soon", { when: rs.expires_at.slice(0, 16).replace("T", " ") }), "warn");
    else pill($("st-ruleset"), base, "");
  }
  const clock = $("st-clock");
  clock.hidden = !status.clock_warning;
  if (status.clock_warning) clock.textContent = "⚠ " + t("status.clock_warning", { text: status.clock_warning });
}
async function refreshStatus() {
  try {
    status = await api("GET", "/v1/status");
    renderStatus();
    if (status.current_checkout && (!current || current.checkout_id !== status.current_checkout || current.status !== "open")) {
      await showCheckout(status.current_checkout);
    }
  } catch (e) {
    pill($("st-live"), "✖ " + e.message, "bad");
  }
}

// --- the checkout ---
function renderCheckout() {
  const open = current && current.status === "open";
  $("sale").hidden = !open;
  $("sale-new").hidden = open;
  if (!current) return;
  $("basket-total").textContent = money(current.basket_total);
  $("eligible-total").textContent = money(current.eligible_total);
  $("discount-total").textContent = money(current.discount_total);
  $("to-pay").textContent = money(current.basket_total - current.discount_total);
  const list = $("decisions");
  list.replaceChildren();
  for (const d of current.decisions.slice().reverse()) {
    const li = document.createElement("li");
    const icon = document.createElement("span");
    icon.textContent = d.decision === "accepted" ? "✔" : "✖";
    icon.className = d.decision === "accepted" ? "state-forwarded" : "state-rejected";
    const text = document.createElement("span");
    text.textContent = (d.at || "").slice(11, 19) + "  " + words(d);
    li.append(icon, text);
    list.append(li);
  }
  if (!open) {
    $("no-checkout").textContent = current.status === "paid" ? t("cashier.closed_paid") : current.status === "cancelled" ? t("cashier.closed_cancelled") : t("cashier.no_checkout");
  }
}
async function showCheckout(id) {
  current = await api("GET", "/v1/checkouts/" + encodeURIComponent(id));
  renderCheckout();
}
function showDecision(d) {
  const v = $("verdict");
  v.hidden = false;
  const ok = d.decision === "accepted";
  v.className = "verdict " + (ok ? "accepted" : "rejected");
  $("verdict-icon").textContent = ok ? "✔" : "✖";
  $("verdict-title").textContent = ok ? t("decision.accepted_title") : t("decision.rejected_title");
  $("verdict-detail").textContent = ok ? t("decision.discount") + " " + money(d.discount) : words(d);
  $("verdict-pay").textContent = ok && current ? t("decision.to_pay") + " " + money(current.basket_total - current.discount_total) : "";
  v.dataset.reason = d.reason || "accepted";
  beep(ok);
}

$("open-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("open-error").textContent = "";
  const basket = parseAmount($("basket").value);
  const eligibleText = $("eligible").value.trim();
  const eligible = eligibleText === "" ? undefined : parseAmount(eligibleText);
  if (basket === null || eligible === null) {
    $("open-error").textContent = t("cashier.amount_invalid");
    return;
  }
  try {
    const body = { basket_total: basket };
    if (eligible !== undefined) body.eligible_total = eligible;
    current = await api("POST", "/v1/checkouts", body);
    $("verdict").hidden = true;
    renderCheckout();
    $("code").focus();
  } catch (e) {
    $("open-error").textContent = t("cashier.request_failed", { error: e.message });
  }
});
$("code-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const code = $("code").value.trim();
  if (!code || !current) return;
  $("code").value = "";
  $("code-error").textContent = "";
  try {
    await api("POST", "/v1/checkouts/" + encodeURIComponent(current.checkout_id) + "/codes", { code });
  } catch (e) {
    $("code-error").textContent = t("cashier.request_failed", { error: e.message });
  }
  $("code").focus();
});
async function close(statusValue) {
  if (!current) return;
  try {
    current = await api("POST", "/v1/checkouts/" + encodeURIComponent(current.checkout_id) + "/close", { status: statusValue });
    renderCheckout();
    $("basket").value = "";
    $("eligible").value = "";
    $("basket").focus();
  } catch (e) {
    $("code-error").textContent = t("cashier.request_failed", { error: e.message });
  }
}
$("paid").addEventListener("click", () => close("paid"));
$("cancel").addEventListener("click", () => { if (confirm(t("cashier.cancel_confirm"))) close("cancelled"); });

// --- live updates ---
function connect() {
  const source = new EventSource("/v1/events");
  source.onopen = () => {
    document.body.dataset.live = "1";
    pill($("st-live"), "● " + t("status.live"), "ok");
    refreshStatus();
  };
  source.onerror = () => pill($("st-live"), "… " + t("status.reconnecting"), "warn");
  source.addEventListener("decision", async (ev) => {
    const d = JSON.parse(ev.data);
    if (!current || current.checkout_id !== d.checkout_id) await showCheckout(d.checkout_id);
    else await showCheckout(current.checkout_id);
    showDecision(d);
    refreshStatus();
  });
  source.addEventListener("checkout", (ev) => {
    const c = JSON.parse(ev.data);
    if (c.status === "open" || (current && current.checkout_id === c.checkout_id)) {
      if (!current || current.checkout_id !== c.checkout_id) $("verdict").hidden = true;
      current = c;
      renderCheckout();
    }
  });
  for (const name of ["scanner", "sync", "ruleset"]) source.addEventListener(name, refreshStatus);
  // A page kept in the back/forward cache would otherwise hold its stream open; browsers
  // allow only a few connections per host.
  addEventListener("pagehide", () => source.close());
  addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
}
refreshStatus().then(() => renderCheckout());
connect();
setInterval(refreshStatus, 60000);
