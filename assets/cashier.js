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
  if (d.messages && d.messages[document.documentElement.lang]) return d.messages[document.documentElement.lang];
  if (d.decision === "accepted") return t("decision.accepted", { amount: money(d.discount) });
  return t("reason." + d.reason);
}
// The campaign's name in the page's language, where the rule set gives one.
function campaignName(d) {
  if (d.reason === "basket_limit") return ""; // its words name the coupons already
  const names = d.campaign_names || {};
  return names[document.documentElement.lang] || names.en || "";
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
// A failed call: `code` the daemon's error code ("unreachable" when it did not answer),
// `message` the cashier's words for it, with what to do.
const ERROR_KEYS = {
  unreachable: "cashier.error_unreachable", unauthorized: "cashier.error_session",
  checkout_closed: "cashier.error_checkout_closed", not_found: "cashier.error_not_found",
  shutting_down: "cashier.error_restarting", manager_required: "cashier.error_manager_required",
  checkout_has_coupons: "cashier.amounts_locked",
};
function apiError(code, error) {
  const field = error && /`(\w+)`/.exec(error.message || "");
  let key = ERROR_KEYS[code];
  if (code === "bad_field" && field && field[1] === "eligible_total") key = "cashier.error_eligible_above_basket";
  const e = new Error(key ? t(key) : t("cashier.error_code", { code }));
  e.code = code;
  return e;
}
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw apiError("unreachable");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw apiError((data.error && data.error.code) || String(response.status), data.error);
  }
  return data;
}

// --- sound: on unless this terminal's browser turned it off (remembered in localStorage);
// accepted: two rising bright notes, refused: two falling low buzzes ---
let audio = null;
const TONES = {
  accept: { wave: "sine", notes: [[880, 0, 0.09], [1320, 0.1, 0.14]] },
  refuse: { wave: "square", notes: [[330, 0, 0.18], [220, 0.22, 0.3]] },
};
function unlockAudio() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (_) { /* no audio: silent */ }
}
// Browsers start audio only after a gesture: the first touch or key unlocks it.
for (const name of ["pointerdown", "keydown"]) addEventListener(name, unlockAudio, { once: true });
function beep(ok) {
  if (!$("sound").checked) return;
  const tone = ok ? "accept" : "refuse";
  document.body.dataset.tone = tone;
  try {
    unlockAudio();
    const start = audio.currentTime;
    for (const [frequency, at, length] of TONES[tone].notes) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = TONES[tone].wave;
      osc.frequency.value = frequency;
      gain.gain.value = ok ? 0.18 : 0.08;
      osc.connect(gain).connect(audio.destination);
      osc.start(start + at);
      osc.stop(start + at + length);
    }
  } catch (_) { /* no audio device: silent */ }
}
$("sound").checked = localStorage.getItem("redeemd.sound") !== "0";
$("sound").addEventListener("change", () => localStorage.setItem("redeemd.sound", $("sound").checked ? "1" : "0"));

// --- status strip ---
function pill(el, text, kind) {
  el.textContent = text;
  el.className = "pill" + (kind ? " " + kind : "");
}
// Whether the daemon answered lately: when it does not, the strip claims nothing it
// cannot know (scanner, network).
let reachable = true;
function renderUnknown() {
  reachable = false;
  pill($("st-scanner"), "? " + t("status.scanner") + ": " + t("status.unknown"), "warn");
  pill($("st-sync"), "? " + t("status.unknown"), "warn");
}
function renderStatus() {
  if (!status || !reachable) return;
  const sc = status.scanner || {};
  const scanText = { connected: "status.scanner_connected", disconnected: "status.scanner_disconnected", none: "status.scanner_none" }[sc.state] || "status.scanner_none";
  pill($("st-scanner"), (sc.state === "connected" ? "✔ " : sc.state === "disconnected" ? "✖ " : "") + t("status.scanner") + ": " + t(scanText),
    sc.state === "connected" ? "ok" : sc.state === "disconnected" ? "bad" : "");
  const sync = status.sync ? status.sync.state : null;
  const unsynced = t("status.unsynced", { count: status.unsynced || 0 });
  // "Online" only while the last contact is recent: an upstream that just went away
  // is not known to be gone until the forwarder next tries.
  const contactAge = status.last_sync ? (Date.now() - Date.parse(status.last_sync)) / 1000 : Infinity;
  if (sync === "online" && contactAge <= RECENT_CONTACT_S) pill($("st-sync"), "✔ " + t("status.online") + " · " + unsynced, "ok");
  else if (sync === "online") pill($("st-sync"), (Number.isFinite(contactAge) ? t("status.last_contact", { minutes: Math.floor(contactAge / 60) }) : t("status.unknown")) + " · " + unsynced, "");
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
// The forwarder hears from upstream at least every heartbeat (60 s by default).
const RECENT_CONTACT_S = 150;
async function refreshStatus() {
  try {
    status = await api("GET", "/v1/status");
    reachable = true;
    renderStatus();
    if (status.current_checkout && (!current || current.checkout_id !== status.current_checkout || current.status !== "open")) {
      await showCheckout(status.current_checkout);
    }
  } catch (e) {
    if (e.code === "unreachable") renderUnknown();
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
    const name = campaignName(d);
    text.textContent = (d.at || "").slice(11, 19) + "  " + words(d) + (name ? " · " + name : "");
    li.append(icon, text);
    list.append(li);
  }
  if (open) {
    $("scan-notice").hidden = true;
    const locked = current.decisions.some((d) => d.decision === "accepted") && current.discount_total > 0;
    $("amounts-locked").hidden = !locked;
    $("amounts-fields").hidden = locked;
  } else {
    // The end of a sale: its verdict goes, a summary of what happened stays.
    $("amounts-form").hidden = true;
    $("verdict").hidden = true;
    const returned = current.decisions.some((d) => d.decision === "accepted");
    const summary = { paid: t("cashier.summary_paid", { amount: money(current.basket_total - current.discount_total) }),
      cancelled: returned ? t("cashier.summary_cancelled_returned") : t("cashier.closed_cancelled") }[current.status];
    $("no-checkout").textContent = summary || t("cashier.no_checkout");
    $("no-checkout").className = summary ? "summary " + current.status : "muted";
  }
}
// A scan with no sale open decides nothing: the screen says to start one.
function scanIgnored(data) {
  if (data.ignored !== "no_checkout") return;
  const notice = $("scan-notice");
  notice.textContent = t("cashier.scan_no_checkout");
  notice.hidden = false;
  beep(false);
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
  const name = campaignName(d);
  $("verdict-detail").textContent = (ok ? t("decision.discount") + " " + money(d.discount) : words(d)) + (name ? " · " + name : "");
  $("verdict-pay").textContent = ok && current ? t("decision.to_pay") + " " + money(current.basket_total - current.discount_total) : "";
  v.dataset.reason = d.reason || "accepted";
  beep(ok);
  // When the frame that shows it began (wall clock, ms), for benches/scan_to_screen.rs.
  requestAnimationFrame(() => {
    const paints = (window.__verdictPaints ||= []);
    if (paints.length < 1000) paints.push(performance.timeOrigin + performance.now());
  });
}

$("open-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("open-error").textContent = "";
  const basket = parseAmount($("basket").value);
  const eligibleText = $("eligible").value.trim();
  const eligible = eligibleText === "" ? undefined : parseAmount(eligibleText);
  if (basket === null || eligible === null) {
    $("open-error").textContent = t("cashier.amount_invalid");
    if (eligible === null) $("eligible").value = "";
    return;
  }
  if (eligible !== undefined && eligible > basket) {
    $("open-error").textContent = t("cashier.error_eligible_above_basket");
    $("eligible").value = "";
    return;
  }
  if (!confirmLarge(basket)) return;
  try {
    const body = { basket_total: basket };
    if (eligible !== undefined) body.eligible_total = eligible;
    current = await api("POST", "/v1/checkouts", body);
    $("verdict").hidden = true;
    renderCheckout();
    $("code").focus();
  } catch (e) {
    $("open-error").textContent = e.message;
    $("eligible").value = ""; // a refused attempt leaves no eligible amount to carry over
  }
});
// An amount far above a usual sale (a slipped digit) asks before it is used.
const LARGE_AMOUNT = 200000; // minor units: 2000.00
function confirmLarge(minor) {
  return minor < LARGE_AMOUNT || confirm(t("cashier.large_amount_confirm", { amount: money(minor) }));
}
// Correcting the amounts of the open sale, while it holds no accepted coupon.
$("edit-amounts").addEventListener("click", () => {
  const form = $("amounts-form");
  form.hidden = !form.hidden;
  $("amounts-error").textContent = "";
  if (!form.hidden && current) {
    $("new-basket").value = money(current.basket_total);
    $("new-eligible").value = current.eligible_total === current.basket_total ? "" : money(current.eligible_total);
    if (!$("amounts-fields").hidden) $("new-basket").focus();
  }
});
$("amounts-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("amounts-error").textContent = "";
  if (!current) return;
  const basket = parseAmount($("new-basket").value);
  const eligibleText = $("new-eligible").value.trim();
  const eligible = eligibleText === "" ? undefined : parseAmount(eligibleText);
  if (basket === null || eligible === null) {
    $("amounts-error").textContent = t("cashier.amount_invalid");
    return;
  }
  if (eligible !== undefined && eligible > basket) {
    $("amounts-error").textContent = t("cashier.error_eligible_above_basket");
    $("new-eligible").value = "";
    return;
  }
  if (!confirmLarge(basket)) return;
  const body = { basket_total: basket };
  if (eligible !== undefined) body.eligible_total = eligible;
  try {
    current = await api("POST", "/v1/checkouts/" + encodeURIComponent(current.checkout_id) + "/amounts", body);
    $("amounts-form").hidden = true;
    renderCheckout();
    $("code").focus();
  } catch (e) {
    $("amounts-error").textContent = e.message;
    if (e.code === "checkout_has_coupons") await showCheckout(current.checkout_id);
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
    $("code-error").textContent = e.message;
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
    $("code-error").textContent = e.message;
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
  source.onerror = () => {
    document.body.dataset.live = "0";
    renderUnknown();
    pill($("st-live"), "… " + t("status.reconnecting"), "warn");
  };
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
  source.addEventListener("scan", (ev) => scanIgnored(JSON.parse(ev.data)));
  for (const name of ["scanner", "sync", "ruleset"]) source.addEventListener(name, refreshStatus);
  // A page kept in the back/forward cache would otherwise hold its stream open; browsers
  // allow only a few connections per host.
  addEventListener("pagehide", () => source.close());
  addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
}
refreshStatus().then(() => renderCheckout());
connect();
setInterval(refreshStatus, 30000);
