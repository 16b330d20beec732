"""The events view: one self-contained HTML document (no external resources) over /api/events.

The filters live in the page's URL (`/events?camera=tower-3&state=open&since=2026-12-01`), so a view can be
bookmarked or sent to a colleague; each event shows its annotated snapshot and the detection that raised it,
and three buttons record a person's decision (POST /api/events/<id>/review, JSON, same origin). The list is
refreshed every 10 s, but not while a note is being typed.
"""

EVENTS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>inspector: events</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f5f7; color: #1d2330; }
h1 { font-size: 1.3rem; margin: 0 0 .6rem 0; }
h1 a { font-size: .9rem; font-weight: normal; margin-left: 1rem; }
form { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin-bottom: .6rem; }
label { font-size: .8rem; display: flex; flex-direction: column; gap: .15rem; }
select, input { font: inherit; padding: .2rem; }
#counts { margin: .3rem 0 .8rem 0; font-size: .9rem; }
#counts a { margin-right: 1rem; }
#counts a.current { font-weight: 700; }
#list { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: .8rem; }
.event { background: #fff; border-radius: 6px; padding: .5rem; box-shadow: 0 1px 3px #0002;
         border-left: 6px solid #999; }
.event.state-confirmed { border-left-color: #c0392b; }
.event.state-false_alarm { border-left-color: #2e86de; }
.event.state-open { border-left-color: #e1a100; }
.event img { width: 100%; display: block; background: #222; min-height: 80px; }
.event .nosnap { background: #ddd; padding: 2rem 0; text-align: center; font-size: .85rem; }
.event .what { font-weight: 600; margin: .35rem 0 .1rem 0; }
.event .meta { font-size: .8rem; color: #4a5263; }
.event .state { font-size: .8rem; margin: .25rem 0; }
.event .actions { display: flex; gap: .3rem; flex-wrap: wrap; align-items: center; }
.event .actions input { flex: 1 1 8rem; font-size: .8rem; }
button { font: inherit; font-size: .85rem; padding: .2rem .55rem; cursor: pointer; }
button.confirm { background: #fbe3e0; }
button.false_alarm { background: #e0edfb; }
button[aria-pressed=true] { font-weight: 700; outline: 2px solid #4a5263; }
#pages { margin: .8rem 0; display: flex; gap: .6rem; align-items: center; font-size: .9rem; }
#message { color: #b00; font-size: .9rem; min-height: 1.2rem; }
</style>
</head>
<body>
<h1>inspector &mdash; events <a href="/">status page</a></h1>
<form id="filters">
<label>camera <select name="camera"><option value="">all</option></select></label>
<label>class <select name="class"><option value="">all</option></select></label>
<label>state <select name="state"><option value="">all</option><option value="open">open</option>
<option value="confirmed">confirmed</option><option value="false_alarm">false alarm</option></select></label>
<label>since (UTC) <input type="date" name="since"></label>
<label>before (UTC) <input type="date" name="until"></label>
</form>
<div id="counts"></div>
<div id="message"></div>
<div id="list"></div>
<div id="pages"><button type="button" id="newer">&larr; newer</button><span id="range"></span>
<button type="button" id="older">older &rarr;</button></div>
<script>
"use strict";
const PAGE = 24;
const LABEL = {open: "open", confirmed: "confirmed", false_alarm: "false alarm"};
const form = document.getElementById("filters");
let offset = 0;
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function filters() {
  const params = new URLSearchParams();
  for (const field of form.elements) if (field.name && field.value) params.set(field.name, field.value);
  return params;
}
function fromUrl() {
  const params = new URLSearchParams(location.search);
  for (const field of form.elements) if (field.name) field.value = params.get(field.name) || "";
  offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
}
function toUrl() {
  const params = filters();
  if (offset) params.set("offset", offset);
  history.replaceState(null, "", "/events" + (params.toString() ? "?" + params : ""));
}
function fillChoices(select, values) {
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const v of values) select.add(new Option(v, v));
  if (keep && !values.includes(keep)) select.add(new Option(keep, keep));
  select.value = keep;
}
function when(iso) { return iso.replace("T", " ").slice(0, 19); }
async function decide(ev, state, note, card) {
  for (const b of card.querySelectorAll("button")) b.disabled = true;
  try {
    const response = await fetch("/api/events/" + ev.event_id + "/review", {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({state: state, note: note})});
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
    document.getElementById("message").textContent = "";
  } catch (err) {
    document.getElementById("message").textContent = "not saved: " + err.message;
  }
  await load();
}
function render(ev) {
  const card = el("div", undefined, "event state-" + ev.state);
  card.id = "event-" + ev.event_id;
  card.dataset.state = ev.state;
  if (ev.snapshot) {
    const img = el("img");
    img.loading = "lazy";
    img.alt = ev["class"] + " on " + ev.camera;
    img.src = "/events/" + ev.event_id + ".jpg?v=" + ev.frame;
    card.appendChild(img);
  } else {
    card.appendChild(el("div", "no snapshot (off, or removed by its retention)", "nosnap"));
  }
  card.appendChild(el("div", ev["class"] + " \\u00b7 score " + ev.score.toFixed(2) + " \\u00b7 " + ev.camera +
                      (ev.zone !== "frame" ? " / zone " + ev.zone : ""), "what"));
  card.appendChild(el("div", when(ev.started) + " UTC, " + ev.hits + " frames" +
                      (ev.ended ? ", ended " + when(ev.last_time).slice(11) : ", active") +
                      " \\u00b7 frame " + ev.frame + " \\u00b7 box " + ev.box.map(v => Math.round(v)).join(", "),
                      "meta"));
  card.appendChild(el("div", LABEL[ev.state] + (ev.reviewed ? " (" + when(ev.reviewed) + " UTC)" : "") +
                      (ev.note ? ": " + ev.note : ""), "state"));
  const actions = el("div", undefined, "actions");
  const note = el("input");
  note.placeholder = "note";
  note.maxLength = 500;
  note.value = ev.note;
  note.setAttribute("aria-label", "note on this event");
  for (const [state, text, cls] of [["confirmed", "Confirm", "confirm"], ["false_alarm", "False alarm", "false_alarm"],
                                    ["open", "Reopen", "reopen"]]) {
    if (state === ev.state && state === "open") continue;
    const b = el("button", text, cls);
    b.type = "button";
    b.setAttribute("aria-pressed", String(state === ev.state));
    b.addEventListener("click", () => decide(ev, state, note.value, card));
    actions.appendChild(b);
  }
  actions.appendChild(note);
  card.appendChild(actions);
  return card;
}
async function load() {
  const params = filters();
  params.set("limit", PAGE);
  params.set("offset", offset);
  let data;
  try {
    const response = await fetch("/api/events?" + params, {credentials: "same-origin", cache: "no-store"});
    data = await response.json();
    if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
  } catch (err) {
    document.getElementById("message").textContent = "cannot list the events: " + err.message;
    return;
  }
  fillChoices(form.elements.camera, data.cameras);
  fillChoices(form.elements["class"], data.classes);
  const counts = document.getElementById("counts");
  counts.replaceChildren();
  const base = filters();
  for (const state of ["", "open", "confirmed", "false_alarm"]) {
    const link = new URLSearchParams(base);
    if (state) link.set("state", state); else link.delete("state");
    const n = state ? data.counts[state] : Object.values(data.counts).reduce((a, b) => a + b, 0);
    const a = el("a", (state ? LABEL[state] : "all") + " (" + n + ")");
    a.href = "/events" + (link.toString() ? "?" + link : "");
    a.dataset.state = state;
    if (state === (form.elements.state.value || "")) a.className = "current";
    counts.appendChild(a);
  }
  const list = document.getElementById("list");
  list.replaceChildren(...data.events.map(render));
  if (!data.events.length) list.appendChild(el("p", "no event matches these filters"));
  document.getElementById("range").textContent = data.total ?
    (offset + 1) + "\\u2013" + (offset + data.events.length) + " of " + data.total : "";
  document.getElementById("newer").disabled = offset === 0;
  document.getElementById("older").disabled = offset + data.events.length >= data.total;
}
form.addEventListener("change", () => { offset = 0; toUrl(); load(); });
document.getElementById("newer").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); toUrl(); load(); });
document.getElementById("older").addEventListener("click", () => { offset += PAGE; toUrl(); load(); });
fromUrl();
load();
setInterval(() => { if (!(document.activeElement && document.activeElement.tagName === "INPUT")) load(); }, 10000);
</script>
</body>
</html>
"""
