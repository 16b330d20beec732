"""The status page: one self-contained HTML document (no external resources, works on an isolated network).
It polls /api/status every 2 s and shows each camera's latest annotated frame, its rates and the recent events.
"""

STATUS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>inspector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1rem; background: #f4f5f7; color: #1d2330; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem 0; }
#state { font-weight: 600; }
#cameras { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
.camera { background: #fff; border-radius: 6px; padding: .6rem; box-shadow: 0 1px 3px #0002; }
.camera.degraded { outline: 3px solid #d33; }
.camera img { width: 100%; background: #222; min-height: 120px; display: block; }
.camera h2 { font-size: 1rem; margin: 0 0 .4rem 0; }
.rates { font-size: .85rem; margin-top: .4rem; }
table { border-collapse: collapse; margin-top: 1rem; background: #fff; font-size: .85rem; }
td, th { padding: .25rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
</style>
</head>
<body>
<h1>inspector &mdash; <span id="state">loading</span></h1>
<div id="outputs"></div>
<div id="cameras"></div>
<h2>Recent events <a href="/events">(review all events)</a></h2>
<table id="events"><thead><tr><th>time (UTC)</th><th>camera</th><th>zone</th><th>class</th><th>type</th>
<th>score</th><th>snapshot</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const cards = {};
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function card(cam) {
  if (!cards[cam.id]) {
    const div = el("div", undefined, "camera");
    div.id = "camera-" + cam.id;
    div.appendChild(el("h2", cam.id));
    const img = el("img");
    img.alt = "latest frame of " + cam.id;
    div.appendChild(img);
    div.appendChild(el("div", "", "rates"));
    document.getElementById("cameras").appendChild(div);
    cards[cam.id] = {div: div, img: img, rates: div.querySelector(".rates"), frame: -1};
  }
  return cards[cam.id];
}
async function refresh() {
  let status;
  try {
    const response = await fetch("/api/status", {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    status = await response.json();
  } catch (err) {
    document.getElementById("state").textContent = "unreachable (" + err.message + ")";
    return;
  }
  document.getElementById("state").textContent = status.state +
    (status.problems.length ? " (degraded: " + status.problems.join("; ") + ")" : "");
  for (const cam of status.cameras) {
    const c = card(cam);
    c.div.className = "camera" + (cam.degraded ? " degraded" : "");
    c.rates.textContent = cam.state + (cam.degraded ? " (" + cam.reason + ")" : "") +
      (cam.state === "failed" && cam.last_error ? ": " + cam.last_error : "") + " \\u00b7 " +
      cam.fps.toFixed(1) + " fps \\u00b7 processed " + cam.processed + " \\u00b7 dropped " + (cam.dropped === null ? "?" : cam.dropped) +
      " \\u00b7 reconnects " + cam.reconnects + " \\u00b7 detections " + cam.detections;
    if (cam.last_frame !== null && cam.last_frame !== c.frame) {
      c.frame = cam.last_frame;
      c.img.src = "/snapshot/" + encodeURIComponent(cam.id) + "?frame=" + cam.last_frame;
    }
  }
  document.getElementById("outputs").textContent = status.outputs.map(
    o => o.sink + ": backlog " + o.backlog + (o.healthy ? "" : " (retrying: " + o.last_error + ")")).join(" \\u00b7 ");
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  for (const ev of status.events) {
    const row = el("tr");
    row.className = "event";
    for (const v of [ev.time.replace("T", " ").slice(0, 19), ev.camera, ev.zone, ev["class"], ev.type,
                     ev.score.toFixed(2)]) row.appendChild(el("td", v));
    const cell = el("td");
    if (ev.snapshot) {
      const a = el("a", "jpeg");
      a.href = "/events/" + ev.event_id + ".jpg";
      cell.appendChild(a);
    }
    row.appendChild(cell);
    body.appendChild(row);
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
