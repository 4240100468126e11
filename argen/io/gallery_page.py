"""The gallery page of a run (``OUT/index.html``): one self-contained static file (inline CSS and
script, no server, no network) that works from ``file://``.

The run's data is embedded once as JSON (``<`` ``>`` ``&`` escaped, so no prompt can close the
script element) and the page's script draws the cards with ``textContent`` only, so a prompt or
flag holding HTML is shown as typed. Media load lazily (an IntersectionObserver sets each
``src`` as its card nears the viewport), so a page of 1,000 outputs opens at once. Each media
element records its outcome in ``data-state`` ("loaded" or "error") and ``#media-log`` keeps the
counts, which tests read through a headless browser; a media file that cannot be loaded is named
on its card. Cards off screen are neither laid out nor painted (``content-visibility: auto``):
without that, laying out 1,000 cards took the browser seconds.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = """
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d2125;background:#f4f5f7}
header{padding:14px 20px;background:#1d2125;color:#fff}header h1{margin:0;font-size:19px}header p{margin:4px 0 0;color:#bfc5cc}
#summary{padding:10px 20px}#summary table{border-collapse:collapse}#summary td,#summary th{padding:2px 12px 2px 0;text-align:right}
#summary td:first-child,#summary th:first-child{text-align:left}.bad{color:#b42318}#errors li{font-family:monospace;white-space:pre-wrap}
#filters{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;padding:8px 20px;
background:#fff;border-bottom:1px solid #d6d9dd}#filters label{font-size:12px;color:#555}#filters select,#filters input{margin-left:4px}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:14px;padding:14px 20px}
.card{content-visibility:auto;contain-intrinsic-size:auto 380px;background:#fff;border:1px solid #d6d9dd;border-radius:6px;
overflow:hidden;display:flex;flex-direction:column}
.card.failed{border-color:#f1a9a0}.media{height:230px;display:flex;align-items:center;justify-content:center;background:#e9ebee}
.media img,.media video{width:100%;height:100%;object-fit:contain;image-rendering:pixelated}
.media.wide img{image-rendering:auto}.media audio{width:94%}.media.stack{flex-direction:column;gap:6px}
.media.stack img{height:170px}.media pre{margin:0;padding:8px;width:100%;height:100%;overflow:auto;font-size:12px;
white-space:pre-wrap;background:#fbfbfc}.meta{padding:8px 10px;display:flex;flex-direction:column;gap:3px}
.prompt{font-weight:600;word-break:break-word;white-space:pre-wrap}.line{color:#555;font-size:12px}
.flag{display:inline-block;margin:1px 4px 1px 0;padding:0 5px;border-radius:3px;background:#eef0f3;font:11px monospace}
.flag.axis{background:#dbe8ff}.error{color:#b42318;font:12px monospace;white-space:pre-wrap}.note{color:#b42318;font-size:12px}
a{color:#175cd3}[hidden]{display:none!important}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var pageErrors = document.getElementById("page-errors");
  window.addEventListener("error", function (e) { pageErrors.textContent += (e.message || "error") + "\n"; });
  var data = JSON.parse(document.getElementById("gallery-data").textContent);
  var log = document.getElementById("media-log");
  var counts = {loaded: 0, error: 0, total: 0};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function href(path) { return path.split("/").map(encodeURIComponent).join("/"); }
  function show(v) { return typeof v === "string" ? v : JSON.stringify(v); }
  function note() { log.dataset.loaded = counts.loaded; log.dataset.error = counts.error; log.dataset.total = counts.total; }
  var lazy = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (en) { if (en.isIntersecting) { lazy.unobserve(en.target); en.target.src = en.target.dataset.src; } });
  }, {rootMargin: "600px"}) : null;
  function media(tag, path) {
    var m = el(tag);
    m.dataset.src = href(path);
    counts.total++;
    var ok = tag === "img" ? "load" : "loadedmetadata";
    m.addEventListener(ok, function () { m.dataset.state = "loaded"; counts.loaded++; note(); }, {once: true});
    m.addEventListener("error", function () {
      m.dataset.state = "error"; counts.error++; note();
      m.parentNode.appendChild(el("p", "note", "cannot load " + path));
    }, {once: true});
    if (tag !== "img") { m.controls = true; m.preload = "metadata"; }
    if (tag === "video") { m.muted = true; m.loop = true; m.playsInline = true; }
    if (tag === "img") { m.alt = path; m.decoding = "async"; }
    if (lazy) lazy.observe(m); else m.src = m.dataset.src;
    return m;
  }
  function mediaBox(c) {
    var box = el("div", "media");
    if (c.st !== "done") { box.appendChild(el("p", "note", c.st === "missing" ? "file missing: " + c.f : "no output")); return box; }
    if (c.m === "image") box.appendChild(media("img", c.f));
    else if (c.m === "video") box.appendChild(media("video", c.f));
    else if (c.m === "audio") {
      box.className += " stack";
      if (c.v) box.appendChild(media("img", c.v));
      box.appendChild(media("audio", c.f));
    }
    else if (c.v) { box.className += " wide"; box.appendChild(media("img", c.v)); }
    else box.appendChild(el("pre", "", c.t || ""));
    return box;
  }
  var jobs = {};
  data.jobs.forEach(function (j) { jobs[j.name] = j; });
  function card(c) {
    var a = el("article", "card" + (c.st === "done" ? "" : " failed"));
    a.dataset.job = c.j; a.dataset.status = c.st; a.dataset.path = c.f;
    a.appendChild(mediaBox(c));
    var meta = el("div", "meta");
    meta.appendChild(el("p", "prompt", c.p === null || c.p === undefined ? "(no prompt)" : c.p));
    meta.appendChild(el("p", "line", c.j + " #" + c.i + " \u00b7 seed " + c.s + " \u00b7 " + c.model));
    var flags = el("p", "flags"), job = jobs[c.j] || {flags: {}};
    Object.keys(c.g || {}).forEach(function (k) { flags.appendChild(el("span", "flag axis", k + "=" + show(c.g[k]))); });
    Object.keys(job.flags).forEach(function (k) { flags.appendChild(el("span", "flag", k + "=" + show(job.flags[k]))); });
    if (flags.childNodes.length) meta.appendChild(flags);
    var links = el("p", "line");
    var f = el("a", "", c.f); f.href = href(c.f); links.appendChild(f);
    if (c.v) {
      links.appendChild(document.createTextNode(" \u00b7 "));
      var v = el("a", "", "preview"); v.href = href(c.v); links.appendChild(v);
    }
    meta.appendChild(links);
    if (c.e) meta.appendChild(el("p", "error", c.e));
    a.appendChild(meta);
    return a;
  }
  function summary() {
    var s = data.summary, table = document.getElementById("summary-table");
    var head = el("tr");
    ["job", "modality", "done", "skipped", "failed", "pending"].forEach(function (h) { head.appendChild(el("th", "", h)); });
    table.appendChild(head);
    s.jobs.forEach(function (r) {
      var tr = el("tr");
      [r.name, r.modality, r.done, r.skipped === null ? "\u2013" : r.skipped, r.failed, r.pending === null ? "\u2013" : r.pending]
        .forEach(function (v, k) { tr.appendChild(el("td", k === 4 && v > 0 ? "bad" : "", v)); });
      if (r.sheet) { var a = el("a", "", "grid sheet"); a.href = href(r.sheet); var td = el("td"); td.appendChild(a); tr.appendChild(td); }
      table.appendChild(tr);
    });
    var errs = document.getElementById("errors"), list = document.getElementById("error-list");
    errs.hidden = !s.errors.length;
    document.getElementById("error-count").textContent = s.errors.length + " failed";
    s.errors.forEach(function (e) { list.appendChild(el("li", "", e)); });
  }
  var controls = {};
  function addSelect(name, label, values) {
    var lab = el("label", "", label), sel = el("select");
    sel.appendChild(el("option", "", "all")).value = "";
    values.forEach(function (v) { sel.appendChild(el("option", "", v)).value = v; });
    sel.name = name; lab.appendChild(sel);
    document.getElementById("filters").insertBefore(lab, document.getElementById("shown"));
    controls[name] = sel; sel.addEventListener("change", apply);
  }
  function filters() {
    addSelect("job", "job", data.jobs.map(function (j) { return j.name; }));
    var axes = {};
    data.cards.forEach(function (c) { Object.keys(c.g || {}).forEach(function (k) { (axes[k] = axes[k] || {})[show(c.g[k])] = 1; }); });
    Object.keys(axes).sort().forEach(function (k) { addSelect("axis:" + k, k, Object.keys(axes[k]).sort()); });
    addSelect("status", "status", ["done", "failed", "missing"]);
    var q = el("input"); q.type = "search"; q.placeholder = "prompt contains"; q.name = "q";
    var lab = el("label", "", "search"); lab.appendChild(q);
    document.getElementById("filters").insertBefore(lab, document.getElementById("shown"));
    controls.q = q; q.addEventListener("input", apply);
    var saved = new URLSearchParams(location.hash.slice(1));
    Object.keys(controls).forEach(function (k) { if (saved.has(k)) controls[k].value = saved.get(k); });
  }
  var nodes = [];
  function apply() {
    var want = {}, state = new URLSearchParams();
    Object.keys(controls).forEach(function (k) {
      if (controls[k].value) { want[k] = controls[k].value; state.set(k, controls[k].value); }
    });
    var shown = 0, q = (want.q || "").toLowerCase();
    data.cards.forEach(function (c, n) {
      var ok = (!want.job || c.j === want.job) && (!want.status || c.st === want.status) &&
        (!q || String(c.p || "").toLowerCase().indexOf(q) >= 0);
      Object.keys(want).forEach(function (k) {
        if (ok && k.indexOf("axis:") === 0) { var g = c.g || {}, a = k.slice(5); ok = a in g && show(g[a]) === want[k]; }
      });
      nodes[n].hidden = !ok; if (ok) shown++;
    });
    document.getElementById("shown").textContent = "showing " + shown + " of " + data.cards.length;
    var h = state.toString(); if (h !== location.hash.slice(1)) history.replaceState(null, "", h ? "#" + h : location.pathname);
  }
  var t0 = performance.now(), frag = document.createDocumentFragment();
  summary();
  data.cards.forEach(function (c) { var n = card(c); nodes.push(n); frag.appendChild(n); });
  document.getElementById("cards").appendChild(frag);
  filters(); apply(); note();
  document.body.dataset.renderMs = Math.round(performance.now() - t0);
  window.addEventListener("load", function () { document.body.dataset.loadMs = Math.round(performance.now()); });
})();
"""


def script_json(data: Any) -> str:
    """JSON safe inside a script element: ``<``, ``>`` and ``&`` escaped, so ``</script>`` or
    ``<!--`` in a prompt cannot end the element or start a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(title: str, subtitle: str, data: dict[str, Any], refresh_s: int | None = None) -> str:
    """The whole page. ``data``: {"jobs": [{name, modality, flags}], "cards": [...],
    "summary": {"jobs": [...], "errors": [...]}} (see argen/batch/gallery.py); ``refresh_s``: reload
    the page every so many seconds (while the run goes on)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{refresh}<title>{html.escape(title)} \u00b7 argen gallery</title><style>{STYLE}</style></head>\n"
        f'<body><header><h1>{html.escape(title)}</h1><p id="status">{html.escape(subtitle)}</p></header>\n'
        '<section id="summary"><table id="summary-table"></table>'
        '<details id="errors" hidden><summary id="error-count"></summary><ol id="error-list"></ol></details></section>\n'
        '<nav id="filters"><span id="shown"></span></nav><main id="cards"></main>\n'
        "<noscript>The cards are drawn by the page's script; without it, see manifest.jsonl.</noscript>\n"
        '<div id="media-log" hidden></div><pre id="page-errors" hidden></pre>\n'
        f'<script type="application/json" id="gallery-data">{script_json(data)}</script>\n'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
