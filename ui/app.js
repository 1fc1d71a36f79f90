// Countersign app window: screens over the Rust commands. No logic here
// beyond showing data and sending what the person chose.
"use strict";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;
const $ = (id) => document.getElementById(id);

// A human message for each command error code.
const MESSAGES = {
  wrong_passcode: "Wrong passcode.",
  backoff: "Too many wrong passcodes. Wait, then try again.",
  wiped: "Too many wrong passcodes: the accounts on this device were erased.",
  weak_passcode: "The passcode must be at least 6 characters.",
  locked: "Countersign locked itself. Unlock to go on.",
  duplicate: "That account is already here.",
  invalid_input: "That is not a valid account link or key.",
  image: "That image could not be read.",
  network: "The server cannot be reached. Check the connection and try again.",
  server: "The server refused.",
  no_challenge: "This request is no longer waiting.",
  passcode_needed: "Enter your passcode to add this account.",
  backup: "The backup file is damaged or the passphrase is wrong.",
  file: "The file could not be read or written.",
  screen: "This screen cannot be captured here. Use an image file or the camera.",
};

function message(e) {
  if (e && e.code) {
    const base = MESSAGES[e.code];
    if (e.code === "backoff" || e.code === "server" || e.code === "bad_input" || e.code === "wrong_passcode" || !base) {
      return e.message.charAt(0).toUpperCase() + e.message.slice(1) + ".";
    }
    return base;
  }
  return String(e);
}

async function call(cmd, args) {
  try {
    return await invoke(cmd, args);
  } catch (e) {
    if (e && e.code === "locked") { await showStatus(); }
    throw e;
  }
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 2500);
}

function show(screen) {
  // A message belongs to the screen it was raised on: leaving it ends it.
  $("toast").hidden = true;
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== "screen-" + screen;
  const first = document.querySelector("#screen-" + screen + " input:not([type=file]), #screen-" + screen + " button");
  if (first) first.focus();
}

// ---- start, first run, lock ---------------------------------------------

let status = null;

async function showStatus() {
  status = await invoke("status");
  $("about").textContent = "Version " + status.version + " · data folder " + status.home;
  if (status.vault === "none") show("first");
  else if (status.vault === "locked") show("lock");
  else { await openMain(); }
}

// The engine judges the passcode as it is typed; only the latest answer
// is shown.
let strengthAsked = 0;
$("first-pass").addEventListener("input", async () => {
  const asked = ++strengthAsked;
  try {
    const r = await call("passcode_strength", { passcode: $("first-pass").value });
    if (asked === strengthAsked) $("first-hint").textContent = r.hint;
  } catch (e) { /* the hint stays as it was */ }
});

$("form-first").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("first-error").textContent = "";
  try {
    await call("create_vault", { passcode: $("first-pass").value, confirm: $("first-confirm").value });
    $("first-pass").value = $("first-confirm").value = "";
    await openMain();
  } catch (e) { $("first-error").textContent = message(e); }
});

$("form-unlock").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("unlock-error").textContent = "";
  try {
    await call("unlock", { passcode: $("unlock-pass").value });
    $("unlock-pass").value = "";
    await openMain();
  } catch (e) { $("unlock-error").textContent = message(e); $("unlock-pass").select(); }
});

$("btn-lock").addEventListener("click", async () => { await call("lock"); await showStatus(); });

// Only what the person does keeps the app unlocked: taps and keys are
// reported (at most every 5 s, and once more at the end of a busy 5 s, so
// the last tap counts); the list refreshing its codes is not.
let lastActivity = 0;
let trailing = null;
function activity() {
  const t = Date.now();
  if (t - lastActivity < 5000) {
    if (!trailing) trailing = setTimeout(() => { trailing = null; activity(); }, lastActivity + 5000 - t);
    return;
  }
  lastActivity = t;
  invoke("activity").catch(() => { /* locked already: the next call shows the lock screen */ });
}
for (const kind of ["pointerdown", "keydown", "wheel", "touchstart"]) {
  document.addEventListener(kind, activity, { capture: true, passive: true });
}

// ---- accounts -----------------------------------------------------------

let accounts = [];

async function openMain() {
  show("main");
  selectTab("accounts"); // reads the accounts
  await refreshRequests();
}

function grouped(code) {
  const h = Math.ceil(code.length / 2);
  return code.slice(0, h) + " " + code.slice(h);
}

function ring(left, period) {
  const frac = Math.max(0, Math.min(1, left / period));
  const c = 2 * Math.PI * 9;
  return `<svg class="ring" viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="9" class="ring-bg"/>` +
    `<circle cx="12" cy="12" r="9" class="ring-fg" stroke-dasharray="${(c * frac).toFixed(1)} ${c.toFixed(1)}"/></svg>`;
}

function renderAccounts() {
  const q = $("search").value.trim().toLowerCase();
  const list = $("account-list");
  list.textContent = "";
  $("search").hidden = accounts.length < 6;
  $("no-accounts").hidden = accounts.length > 0;
  accounts.forEach((a, i) => {
    const label = (a.issuer || "") + " " + a.name;
    if (q && !label.toLowerCase().includes(q)) return;
    const li = document.createElement("li");
    li.className = "account";
    li.dataset.id = a.id;
    const initial = (a.issuer || a.name || "?").charAt(0).toUpperCase();
    const code = a.code ? grouped(a.code) : "Tap for a code";
    li.innerHTML = `<span class="avatar" aria-hidden="true"></span>
      <button class="code-button"><span class="who"><span class="issuer"></span><span class="name"></span></span>
      <span class="code"></span><span class="visually-hidden">, copy</span></button>
      <span class="left" aria-hidden="true"></span>
      <details class="menu"><summary aria-label="More for this account">⋯</summary>
        <button data-act="up">Move up</button><button data-act="rename">Rename</button><button data-act="remove">Remove</button></details>`;
    li.querySelector(".avatar").textContent = initial;
    li.querySelector(".issuer").textContent = (a.issuer || "") + (a.kind === "push" ? " · sign-in approval" : "");
    li.querySelector(".name").textContent = a.name;
    li.querySelector(".code").textContent = code;
    if (a.code) li.querySelector(".left").innerHTML = ring(a.seconds_left, a.period);
    li.querySelector(".code-button").addEventListener("click", () => copyCode(accountNow(a.id) || a));
    li.querySelector(".menu").addEventListener("click", (ev) => accountAction(ev, a, i));
    list.appendChild(li);
  });
}

// The account as last read (its code changes every period).
function accountNow(id) { return accounts.find((x) => x.id === id); }

// Whether `next` lists the same accounts as shown, in the same order.
function sameAccounts(next) {
  return next.length === accounts.length && next.every((a, i) => {
    const b = accounts[i];
    return a.id === b.id && a.name === b.name && a.issuer === b.issuer && a.kind === b.kind;
  });
}

// New codes and countdowns into the rows already shown: an open menu
// stays open and keyboard focus stays where it is.
function updateCodes() {
  for (const li of $("account-list").children) {
    const a = accountNow(li.dataset.id);
    if (!a) continue;
    li.querySelector(".code").textContent = a.code ? grouped(a.code) : "Tap for a code";
    li.querySelector(".left").innerHTML = a.code ? ring(a.seconds_left, a.period) : "";
  }
}

async function refreshAccounts() {
  try {
    const next = await call("accounts");
    const same = sameAccounts(next);
    accounts = next;
    if (same) updateCodes(); else renderAccounts();
  } catch (e) { /* locked: the lock screen shows */ }
}

async function copyCode(a) {
  let code = a.code;
  if (!code) {
    try { code = await call("next_hotp", { id: a.id }); } catch (e) { toast(message(e)); return; }
  }
  try { await navigator.clipboard.writeText(code); toast("Code copied"); }
  catch (e) { toast("Code " + code); }
}

async function accountAction(ev, a, i) {
  const act = ev.target.dataset && ev.target.dataset.act;
  if (!act) return;
  try {
    if (act === "up" && i > 0) await call("move_account", { id: a.id, position: i - 1 });
    if (act === "rename") {
      const name = prompt("New name for " + a.name, a.name);
      if (name && name.trim()) await call("rename", { id: a.id, name: name.trim() });
    }
    if (act === "remove") {
      if (!confirm(`Remove ${a.issuer || ""} ${a.name}? Codes from it will stop working on this device.`)) return;
      const warning = await call("remove", { id: a.id });
      toast(warning ? "Removed here; " + warning : "Removed");
    }
  } catch (e) { toast(message(e)); }
  await refreshAccounts();
}

$("search").addEventListener("input", renderAccounts);
// Each second the countdowns move and a code whose time is up gives way to
// the next one the engine already sent; the engine is asked again only
// then, once a period, for the code after.
function tickCodes() {
  if ($("screen-main").hidden || $("tab-accounts").hidden) return;
  const now = Date.now();
  let stale = false;
  for (const a of accounts) {
    if (!a.code) continue;
    const period = a.period * 1000;
    if (now >= a.changes_at + period || a.changes_at - now > period) {
      // More than a period late (a sleep, another tab) or a clock set
      // back: the codes held are not the right ones; ask again.
      a.code = null;
      stale = true;
      continue;
    }
    if (now >= a.changes_at) {
      a.code = a.next_code;
      a.changes_at += period;
      stale = true;
    }
    a.seconds_left = Math.max(0, Math.ceil((a.changes_at - now) / 1000));
  }
  updateCodes();
  if (stale) refreshAccounts();
}
setInterval(tickCodes, 1000);

// ---- tabs ---------------------------------------------------------------

function selectTab(name) {
  for (const b of document.querySelectorAll("[role=tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === name));
    // One tab stop for the tab list; the arrow keys move within it.
    b.tabIndex = b.dataset.tab === name ? 0 : -1;
  }
  for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== "tab-" + name;
  $("main-title").textContent = name.charAt(0).toUpperCase() + name.slice(1);
  if (name === "activity") refreshHistory();
  if (name === "settings") showSettings();
  if (name === "accounts") refreshAccounts();
}
for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => selectTab(b.dataset.tab));
// The tab list's keys (WAI-ARIA tabs pattern): Left/Right move and wrap,
// Home/End go to the ends; the tab reached is selected and focused.
document.querySelector("[role=tablist]").addEventListener("keydown", (ev) => {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(document.activeElement);
  if (at < 0) return;
  const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[ev.key];
  if (next === undefined) return;
  ev.preventDefault();
  const tab = tabs[(next + tabs.length) % tabs.length];
  selectTab(tab.dataset.tab);
  tab.focus();
});

async function refreshHistory() {
  const items = await call("history").catch(() => []);
  const list = $("history-list");
  list.textContent = "";
  $("no-history").hidden = items.length > 0;
  for (const h of items) {
    const li = document.createElement("li");
    li.className = "history";
    li.textContent = `${new Date(h.at * 1000).toLocaleString()} · ${h.application} · ${h.account} · ${h.decision}: ${h.result}`;
    list.appendChild(li);
  }
}

// ---- add account --------------------------------------------------------

let pendingText = null;
let pendingName = null;

$("btn-add").addEventListener("click", () => { resetAdd(); show("add"); });
$("add-back").addEventListener("click", () => { stopCamera(); show("main"); refreshAccounts(); });

function resetAdd() {
  pendingText = pendingName = null;
  $("preview").hidden = true;
  $("add-error").textContent = $("preview-progress").textContent = "";
  $("add-text").value = $("add-name").value = "";
}

async function previewText(text, name) {
  $("add-error").textContent = "";
  try {
    const items = await call("preview", { text, name: name || null });
    pendingText = text;
    pendingName = name || null;
    const list = $("preview-list");
    list.textContent = "";
    for (const it of items) {
      const li = document.createElement("li");
      li.textContent = `${it.issuer || ""} ${it.account} (${it.kind === "push" ? "sign-in approval with " + it.server : it.kind.toUpperCase()})`;
      list.appendChild(li);
    }
    $("preview-pass-box").hidden = !items.some((i) => i.kind === "push");
    $("preview").hidden = false;
    $("btn-confirm-add").focus();
  } catch (e) { $("add-error").textContent = message(e); $("preview").hidden = false; }
}

$("form-uri").addEventListener("submit", (ev) => {
  ev.preventDefault();
  previewText($("add-text").value.trim(), $("add-name").value.trim() || null);
});

$("add-file").addEventListener("change", () => {
  const f = $("add-file").files[0];
  if (!f) return;
  const reader = new FileReader();
  reader.onload = () => scanImage(reader.result);
  reader.readAsDataURL(f);
});

async function scanImage(dataUrl) {
  try {
    const payloads = await call("scan_image", { image: dataUrl });
    await previewText(payloads[0]);
    return true;
  } catch (e) { $("add-error").textContent = message(e); $("preview").hidden = false; return false; }
}

$("btn-screen").addEventListener("click", async () => {
  $("add-error").textContent = "";
  $("scan-status").textContent = "Looking for a QR code on the screen…";
  try {
    const payloads = await call("scan_screen");
    $("scan-status").textContent = "";
    await previewText(payloads[0]);
  } catch (e) {
    $("scan-status").textContent = "";
    $("add-error").textContent = message(e);
    $("preview").hidden = false;
  }
});

let stream = null;
$("btn-camera").addEventListener("click", async () => {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch (e) { toast("The camera is not available: use an image file or paste the link."); return; }
  const video = $("camera");
  video.srcObject = stream;
  video.hidden = false;
  const canvas = document.createElement("canvas");
  const tick = async () => {
    if (!stream) return;
    if (video.videoWidth) {
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const ok = await call("scan_image", { image: canvas.toDataURL("image/jpeg", 0.9) }).catch(() => null);
      if (ok) { stopCamera(); await previewText(ok[0]); return; }
    }
    setTimeout(tick, 300);
  };
  tick();
});

function stopCamera() {
  if (stream) { for (const t of stream.getTracks()) t.stop(); }
  stream = null;
  $("camera").hidden = true;
}

$("btn-confirm-add").addEventListener("click", async () => {
  if (!pendingText) return;
  $("add-error").textContent = "";
  const push = !$("preview-pass-box").hidden;
  $("preview-progress").textContent = push ? "Activating with the server…" : "Adding…";
  try {
    const r = await call("add", { text: pendingText, name: pendingName, passcode: push ? $("preview-pass").value : null });
    $("preview-pass").value = "";
    $("preview-progress").textContent = "";
    // The typed key or link is in the vault now; not in the page.
    resetAdd();
    show("main");
    toast(`Added ${r.added.length} account${r.added.length === 1 ? "" : "s"}` + (r.skipped.length ? `, ${r.skipped.length} already here` : ""));
    await refreshAccounts();
  } catch (e) { $("preview-progress").textContent = ""; $("add-error").textContent = message(e); }
});

// ---- sign-in requests ---------------------------------------------------

let requests = [];
let current = null;
let action = null;

async function refreshRequests() {
  requests = await call("requests").catch(() => []);
  if (!current || !requests.some((r) => r.id === current.id)) {
    if (current && $("screen-verdict").hidden) expired(current);
    current = requests[0] || null;
    if (current) openRequest(current);
  }
  $("req-queue").textContent = requests.length > 1 ? `${requests.length - 1} more request(s) waiting` : "";
}

function openRequest(r) {
  action = null;
  $("req-account").textContent = r.account;
  $("req-app").textContent = r.application;
  $("req-where").textContent = [r.ip, r.location].filter(Boolean).join(" · ") || "Unknown";
  $("req-time").textContent = new Date(r.created_at * 1000).toLocaleTimeString();
  $("req-drift").hidden = !r.drift_warning;
  $("req-drift").textContent = r.drift_warning || "";
  $("req-number").value = $("req-pass").value = $("req-error").textContent = "";
  $("req-pass-box").hidden = true;
  $("btn-yes").textContent = "Yes";
  $("btn-deny-report").hidden = true;
  r.deadline = Date.now() + r.seconds_left * 1000;
  tickRequest();
  show("request");
  $("req-number").focus();
  // Tells the server the prompt is on screen (for the help desk's timeline).
  call("request_shown", { id: r.id }).catch(() => {});
}

function tickRequest() {
  if (!current) return;
  const left = Math.max(0, Math.round((current.deadline - Date.now()) / 1000));
  $("req-left").textContent = String(left);
  if (left === 0 && !$("screen-request").hidden) { expired(current); current = null; refreshRequests(); }
}
setInterval(tickRequest, 500);

function expired(r) {
  verdict("Request expired", `The sign-in request for ${r.account} expired. Sign in again to get a new one.`);
}

function askPasscode(what, label) {
  action = what;
  $("req-pass-box").hidden = false;
  $("btn-yes").textContent = label;
  $("req-pass").focus();
}

$("form-answer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("req-error").textContent = "";
  if (!action) {
    try { await call("check_number", { number: $("req-number").value }); }
    catch (e) {
      $("req-error").textContent = message(e);
      $("req-number").focus();
      return;
    }
    askPasscode("approve", "Approve");
    return;
  }
  await send(action);
});

$("btn-no").addEventListener("click", () => { askPasscode("deny", "Deny"); $("btn-deny-report").hidden = false; });
$("btn-deny-report").addEventListener("click", () => send("report"));
$("btn-cannot-see").addEventListener("click", () => askPasscode("cannot_see_number", "Deny: I can't see the number"));

const VERDICTS = {
  approved: ["Approved", "You are signed in on the other screen."],
  denied: ["Denied", "The sign-in was refused."],
  reported: ["Reported", "The sign-in was refused and reported. No more requests will come until the help desk clears it."],
  number_mismatch: ["Numbers didn't match", "The number you entered is not the one shown on the sign-in page. The sign-in was refused; sign in again to retry."],
  expired: ["Request expired", "The request expired before your answer arrived."],
};

async function send(what) {
  const r = current;
  try {
    const v = await call("answer", { id: r.id, decision: what, number: what === "approve" ? $("req-number").value.trim() : null, passcode: $("req-pass").value });
    $("req-pass").value = "";
    const [title, text] = VERDICTS[v.status] || [v.status, ""];
    current = null;
    verdict(title, text);
  } catch (e) {
    $("req-error").textContent = message(e);
    if (e && e.code === "no_challenge") { current = null; await refreshRequests(); }
  }
}

function verdict(title, text) {
  $("verdict-title").textContent = title;
  $("verdict-text").textContent = text;
  show("verdict");
}

$("btn-verdict-ok").addEventListener("click", async () => {
  await refreshRequests();
  if (!current) { show("main"); await refreshAccounts(); }
});

// ---- settings -----------------------------------------------------------

$("form-passcode").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("pc-error").textContent = "";
  try {
    await call("change_passcode", { old: $("pc-old").value, new: $("pc-new").value, confirm: $("pc-confirm").value });
    for (const id of ["pc-old", "pc-new", "pc-confirm"]) $(id).value = "";
    toast("Passcode changed");
  } catch (e) { $("pc-error").textContent = message(e); }
});

// The settings in force, as the vault holds them.
async function showSettings() {
  let a;
  try { a = await call("auto_lock"); } catch (e) { return; }
  const select = $("al-seconds");
  if (![...select.options].some((o) => Number(o.value) === a.seconds)) {
    const o = document.createElement("option");
    o.value = String(a.seconds);
    o.textContent = a.seconds % 60 === 0 ? `${a.seconds / 60} minutes` : `${a.seconds} seconds`;
    select.appendChild(o);
  }
  select.value = String(a.seconds);
  $("al-hidden").checked = a.when_hidden;
}

$("form-autolock").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await call("set_auto_lock", { seconds: Number($("al-seconds").value), whenHidden: $("al-hidden").checked });
    toast("Saved");
  } catch (e) { toast(message(e)); }
});

$("form-backup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("bk-error").textContent = "";
  const args = { path: $("bk-path").value, passphrase: $("bk-pass").value };
  try {
    if (ev.submitter && ev.submitter.value === "import") {
      const [added, skipped] = await call("import_backup", args);
      toast(`Imported ${added.length}, ${skipped.length} already here`);
      await refreshAccounts();
    } else {
      const n = await call("export_backup", args);
      toast(`Exported ${n} account${n === 1 ? "" : "s"}`);
    }
    $("bk-pass").value = "";
  } catch (e) { $("bk-error").textContent = message(e); }
});

// ---- events -------------------------------------------------------------

listen("request", () => refreshRequests());
// The engine locked the vault (idle, or the window hidden): forget what
// the window holds (codes, a typed key, the camera) and show the lock.
listen("locked", () => {
  stopCamera();
  resetAdd();
  accounts = [];
  $("account-list").textContent = "";
  showStatus();
});
// Shown again (also after "this screen" stepped aside): if the vault
// locked meanwhile, show the lock; otherwise stay where the person was.
document.addEventListener("visibilitychange", async () => {
  if (document.hidden) return;
  try {
    if ((await call("status")).vault !== "unlocked") showStatus();
  } catch (e) { /* the lock screen shows */ }
});
showStatus();
