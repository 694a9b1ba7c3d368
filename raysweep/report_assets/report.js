// raysweep report: draws the views of one sweep as SVG from the JSON in #report-data.
// Plain JavaScript without libraries, so the page works offline and from file://.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var KINDS = { finished: "finished", stopped: "early-stopped", crashed: "crashed / failed", running: "running" };
  var COLOURS = { finished: "#3b6fb6", stopped: "#e08a1e", crashed: "#d1495b", running: "#8a8f98" };
  var RAMP = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"]; // worst .. best (viridis)
  var metric = data.sweep.metric, runs = data.runs, count = runs.name.length;
  var maximize = !!metric && metric.goal === "maximize";

  // --- small helpers -----------------------------------------------------------------
  function svg(tag, attrs, parent, text) {
    var node = document.createElementNS(NS, tag);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function tag(name, attrs, parent, text) {
    var node = document.createElement(name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function canvas(name, width, height) {
    var box = document.querySelector('[data-plot="' + name + '"]');
    return svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", class: "chart" }, box);
  }
  function note(name, text) { tag("p", { class: "note" }, document.querySelector('[data-plot="' + name + '"]'), text); }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1).replace("e+", "e");
    return String(+v.toPrecision(4));
  }
  function niceTicks(lo, hi, n) {
    var span = (hi - lo) / n, step = Math.pow(10, Math.floor(Math.log10(span))), ratio = span / step;
    step *= ratio >= 7.5 ? 10 : ratio >= 3.5 ? 5 : ratio >= 1.5 ? 2 : 1;
    var out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  // A scale maps [lo, hi] to [r0, r1]; log scales tick at powers of ten when the range spans them.
  function scale(log, lo, hi, r0, r1) {
    if (lo === hi) { lo = log ? lo / 2 : lo - 1; hi = log ? hi * 2 : hi + 1; }
    var t = log ? Math.log10 : function (v) { return v; }, a = t(lo), b = t(hi);
    var f = function (v) { return r0 + (t(v) - a) / (b - a) * (r1 - r0); };
    f.range0 = r0; f.range1 = r1; f.log = log;
    f.ticks = function (n) {
      if (!log) return niceTicks(lo, hi, n);
      var out = [];
      for (var e = Math.ceil(a - 1e-9); e <= Math.floor(b + 1e-9); e++) out.push(Math.pow(10, e));
      return out.length >= 2 ? out : niceTicks(lo, hi, 3).filter(function (v) { return v > 0; });
    };
    return f;
  }
  function quantile(sorted, p) { return sorted[Math.round(p * (sorted.length - 1))]; }
  // The metric's range: the best value always shows, the worst 2% (diverged runs) are clipped.
  function valueRange(values) {
    var v = values.filter(finite).sort(function (x, y) { return x - y; });
    if (!v.length) return null;
    var lo = maximize ? quantile(v, 0.02) : v[0], hi = maximize ? v[v.length - 1] : quantile(v, 0.98);
    var log = lo > 0 && hi / lo > 50, pad = log ? 0 : (hi - lo) * 0.04;
    return { lo: log ? lo / 1.15 : lo - pad, hi: log ? hi * 1.15 : hi + pad, log: log };
  }
  function mix(a, b, t) {
    var x = parseInt(a.slice(1), 16), y = parseInt(b.slice(1), 16), out = 0;
    for (var s = 16; s >= 0; s -= 8) out = out * 256 + Math.round(((x >> s) & 255) * (1 - t) + ((y >> s) & 255) * t);
    return "#" + (out + 0x1000000).toString(16).slice(1);
  }
  function colour(goodness) {
    var g = Math.max(0, Math.min(1, goodness)) * (RAMP.length - 1), i = Math.min(Math.floor(g), RAMP.length - 2);
    return mix(RAMP[i], RAMP[i + 1], g - i);
  }
  function goodness(range) { // 0 for the worst value shown, 1 for the best
    var s = scale(range.log, range.lo, range.hi, 0, 1);
    return function (v) { var t = s(Math.max(range.lo, Math.min(range.hi, v))); return maximize ? t : 1 - t; };
  }
  function yAxis(root, y, x0, x1, n, label) {
    var g = svg("g", { class: "grid" }, root), mid = (y.range0 + y.range1) / 2;
    svg("text", { x: 14, y: mid, transform: "rotate(-90 14 " + mid + ")", "text-anchor": "middle", class: "muted" }, g, label + (y.log ? " (log)" : ""));
    y.ticks(n).forEach(function (v) {
      svg("line", { x1: x0, x2: x1, y1: y(v), y2: y(v) }, g);
      svg("text", { x: x0 - 6, y: y(v) + 4, "text-anchor": "end", class: "muted" }, g, fmt(v));
    });
  }
  function xAxis(root, x, y0, y1, ticks, label) {
    var g = svg("g", { class: "grid" }, root);
    ticks.forEach(function (v) {
      svg("line", { x1: x(v), x2: x(v), y1: y0, y2: y1 }, g);
      svg("text", { x: x(v), y: y1 + 15, "text-anchor": "middle", class: "muted" }, g, fmt(v));
    });
    svg("text", { x: (x.range0 + x.range1) / 2, y: y1 + 32, "text-anchor": "middle", class: "muted" }, g, label);
  }
  function clip(root, id, x, y, w, h) {
    svg("rect", { x: x, y: y, width: w, height: h }, svg("clipPath", { id: id }, root));
    return svg("g", { "clip-path": "url(#" + id + ")" }, root);
  }
  function legend(name, items) {
    var box = tag("div", { class: "legend" }, document.querySelector('[data-plot="' + name + '"]'));
    items.forEach(function (item) {
      var span = tag("span", {}, box);
      if (item[2]) mark(svg("svg", { width: 12, height: 12, style: "display:inline;vertical-align:-1px;margin-right:5px;width:12px" }, span), item[2], 6, 6, item[0]);
      else tag("span", { class: "dot", style: "background:" + item[1] }, span);
      span.appendChild(document.createTextNode(item[0]));
    });
  }
  function kindsPresent() {
    return Object.keys(KINDS).filter(function (k) { return runs.kind.indexOf(k) >= 0; });
  }

  // --- header ------------------------------------------------------------------------
  function header() {
    var s = data.sweep;
    document.getElementById("title").textContent = (s.name || "sweep") + " · " + s.id;
    document.getElementById("subtitle").textContent = [s.method + " sweep",
      metric ? "metric " + metric.name + " (" + metric.goal + ")" : "no metric",
      s.state === "running" ? "still running: this report shows the runs so far" : s.state,
      s.path].join(" · ");
    var chips = document.getElementById("counts");
    tag("span", { class: "chip" }, chips).innerHTML = "<b>" + count + "</b> runs";
    kindsPresent().forEach(function (kind) {
      var chip = tag("span", { class: "chip" }, chips);
      tag("span", { class: "dot", style: "background:" + COLOURS[kind] }, chip);
      chip.appendChild(document.createTextNode(runs.kind.filter(function (k) { return k === kind; }).length + " " + KINDS[kind]));
    });
    document.getElementById("config").textContent = s.yaml;
    document.getElementById("footer").textContent = "raysweep report, generated " + s.generated + " from " + s.path;
  }

  // --- parallel coordinates ----------------------------------------------------------
  function parallel() {
    var range = metric && valueRange(runs.value);
    if (!data.axes.length) return note("parallel", "The sweep has no swept parameters yet.");
    var W = 1300, H = 430, top = 50, bottom = H - 24, left = 50, right = W - (range ? 130 : 40);
    var root = canvas("parallel", W, H), cols = data.axes.slice();
    if (range) cols.push({ label: metric.name + (maximize ? " ↑" : " ↓"), kind: range.log ? "log" : "linear", values: runs.value, range: range });
    var step = (right - left) / Math.max(1, cols.length - 1);
    cols.forEach(function (col, i) { col.x = cols.length > 1 ? left + i * step : (left + right) / 2; col.y = axisScale(col, top, bottom); });
    var good = range ? goodness(range) : null;
    var order = runs.name.map(function (_, i) { return i; });
    if (good) order.sort(function (a, b) { return rank(a) - rank(b); });
    function rank(i) { return finite(runs.value[i]) ? good(runs.value[i]) : -1; }
    var lines = svg("g", { fill: "none", "stroke-width": count > 500 ? 0.8 : 1.4, "stroke-opacity": Math.max(0.15, Math.min(0.85, 8 / Math.sqrt(count))) }, root);
    order.forEach(function (i) {
      var d = "", pen = "M";
      cols.forEach(function (col) {
        var v = col.values[i];
        if (v === null || v === undefined) { pen = "M"; return; }
        d += pen + col.x.toFixed(1) + "," + col.y(v).toFixed(1); pen = "L";
      });
      var stroke = good && finite(runs.value[i]) ? colour(good(runs.value[i])) : "#c3c8d0";
      svg("title", {}, svg("path", { d: d, stroke: stroke, class: "run" }, lines), runs.name[i] + " · " + fmt(runs.value[i]));
    });
    cols.forEach(function (col) { drawAxis(root, col, top, bottom); });
    if (range) colourBar(root, right + 58, top, bottom);
  }
  function axisScale(col, top, bottom) {
    if (col.kind === "category") {
      var n = col.categories.length, pad = (bottom - top) / (2 * Math.max(n, 1));
      var f = function (i) { return n === 1 ? (top + bottom) / 2 : bottom - pad - i * (bottom - top - 2 * pad) / (n - 1); };
      f.ticks = function () { return col.categories.map(function (_, i) { return i; }); };
      return f;
    }
    var r = col.range, v = col.values.filter(finite);
    if (!r) r = v.length ? { lo: Math.min.apply(null, v), hi: Math.max.apply(null, v), log: col.kind === "log" } : { lo: 0, hi: 1, log: false };
    var s = scale(r.log, r.lo, r.hi, bottom, top);
    var g = function (v) { return s(Math.max(r.lo, Math.min(r.hi, v))); };
    g.ticks = s.ticks;
    return g;
  }
  function drawAxis(root, col, top, bottom) {
    var g = svg("g", { class: "axis" }, root);
    svg("line", { x1: col.x, x2: col.x, y1: top, y2: bottom, "stroke-width": 1.2 }, g);
    var ticks = col.y.ticks(5), every = Math.ceil(ticks.length / 14);
    ticks.forEach(function (v, i) {
      if (i % every) return;
      var text = col.kind === "category" ? col.categories[v] : fmt(v);
      svg("line", { x1: col.x - 3, x2: col.x + 3, y1: col.y(v), y2: col.y(v) }, g);
      svg("text", { x: col.x + 6, y: col.y(v) + 4, class: "tick", "paint-order": "stroke", stroke: "#fff", "stroke-width": 3 }, g, text);
    });
    var dot = col.label.lastIndexOf(".");
    if (dot > 0) svg("text", { x: col.x, y: top - 24, "text-anchor": "middle", class: "muted" }, g, col.label.slice(0, dot + 1));
    svg("text", { x: col.x, y: top - 10, "text-anchor": "middle", "font-weight": 600, "font-size": 12 }, g, col.label.slice(dot + 1) + (col.kind === "log" ? " (log)" : ""));
  }
  function colourBar(root, x, top, bottom) {
    var grad = svg("linearGradient", { id: "ramp", x1: 0, x2: 0, y1: 1, y2: 0 }, svg("defs", {}, root));
    RAMP.forEach(function (c, i) { svg("stop", { offset: i / (RAMP.length - 1), "stop-color": c }, grad); });
    svg("rect", { x: x, y: top, width: 12, height: bottom - top, fill: "url(#ramp)", rx: 2 }, root);
    svg("text", { x: x + 18, y: top + 9, class: "muted" }, root, "best");
    svg("text", { x: x + 18, y: bottom, class: "muted" }, root, "worst");
  }

  // --- parameter importance ----------------------------------------------------------
  function importance() {
    var rows = data.importance.rows, hint = document.getElementById("importance-hint");
    hint.textContent = metric ? "With respect to " + metric.name + ": random-forest importance and Pearson correlation, over the runs with a value." : "";
    if (data.importance.note) tag("p", { class: "note" }, document.querySelector('[data-plot="importance"]'), data.importance.note);
    if (!rows.length) return note("importance", metric ? "Needs runs with a value of " + metric.name + "." : "The sweep has no metric.");
    var table = tag("table", {}, document.querySelector('[data-plot="importance"]'));
    var head = tag("tr", {}, tag("thead", {}, table));
    ["Parameter", "Importance", "", "Correlation", ""].forEach(function (h) { tag("th", {}, head, h); });
    var body = tag("tbody", {}, table), max = Math.max.apply(null, rows.map(function (r) { return r[1] || 0; }).concat([1e-12]));
    rows.slice(0, 25).forEach(function (r) {
      var tr = tag("tr", {}, body);
      tag("td", {}, tr, r[0]);
      var bar = tag("div", { class: "bar" }, tag("td", {}, tr));
      if (finite(r[1])) tag("span", { class: "imp", style: "width:" + (100 * r[1] / max).toFixed(1) + "%" }, bar);
      tag("td", { class: "num" }, tr, finite(r[1]) ? r[1].toFixed(3) : "–");
      bar = tag("div", { class: "bar" }, tag("td", {}, tr));
      tag("span", { class: "mid" }, bar);
      if (finite(r[2])) tag("span", { class: r[2] >= 0 ? "pos" : "neg", style: "width:" + (50 * Math.abs(r[2])).toFixed(1) + "%" }, bar);
      tag("td", { class: "num" }, tr, finite(r[2]) ? r[2].toFixed(3) : "–");
    });
    if (rows.length > 25) note("importance", (rows.length - 25) + " more features, less important, are left out.");
  }

  // --- metric over time --------------------------------------------------------------
  function timeline() {
    var range = metric && valueRange(runs.value);
    if (!range) return note("timeline", metric ? "No run has a value of " + metric.name + " yet." : "The sweep has no metric.");
    var W = 640, H = 340, L = 58, R = W - 14, T = 12, B = H - 46;
    var root = canvas("timeline", W, H), tmax = Math.max.apply(null, runs.t.filter(finite).concat([1]));
    var unit = tmax < 120 ? [1, "s"] : tmax < 7200 ? [60, "min"] : [3600, "h"];
    var x = scale(false, -0.02 * tmax / unit[0], 1.03 * tmax / unit[0], L, R), y = scale(range.log, range.lo, range.hi, B, T);
    yAxis(root, y, L, R, 5, metric.name);
    xAxis(root, x, T, B, x.ticks(6).filter(function (v) { return v >= 0; }), "time since the first run (" + unit[1] + ")" + (data.sweep.first_run ? ", started " + data.sweep.first_run.slice(0, 16).replace("T", " ") + " UTC" : ""));
    var area = clip(root, "clip-timeline", L, T - 4, R - L, B - T + 8), d = "";
    runs.best.forEach(function (b, i) {
      if (!finite(b)) return;
      var px = x(runs.t[i] / unit[0]), py = y(b);
      d += (d ? "H" + px.toFixed(1) + "V" : "M" + px.toFixed(1) + ",") + py.toFixed(1);
    });
    if (d) svg("path", { d: d + "H" + R, fill: "none", stroke: "#1f2430", "stroke-width": 1.8 }, area);
    runs.value.forEach(function (v, i) { mark(finite(v) ? area : root, runs.kind[i], x(runs.t[i] / unit[0]), finite(v) ? y(Math.max(range.lo, Math.min(range.hi, v))) : B + 2, runs.name[i] + " · " + fmt(v)); });
    legend("timeline", kindsPresent().map(function (k) { return [KINDS[k], COLOURS[k], k]; }).concat([["best so far", "#1f2430"]]));
  }
  // finished ●, early-stopped ▼, crashed ✕ (on the axis when it has no value), running ○
  function mark(parent, kind, px, py, title) {
    var c = COLOURS[kind], node;
    if (kind === "stopped") node = svg("path", { d: "M" + (px - 4.5) + "," + (py - 3.5) + "h9l-4.5,7.5z", fill: c }, parent);
    else if (kind === "crashed") node = svg("path", { d: "M" + (px - 4) + "," + (py - 4) + "l8,8m0,-8l-8,8", stroke: c, "stroke-width": 2 }, parent);
    else node = svg("circle", { cx: px, cy: py, r: 3.8, fill: kind === "running" ? "#fff" : c, stroke: c, "stroke-width": 1.5, "fill-opacity": 0.85 }, parent);
    svg("title", {}, node, title);
  }

  // --- learning curves ---------------------------------------------------------------
  function curves() {
    var c = data.curves, values = [], maxIt = 1;
    c.runs.forEach(function (r) { values.push.apply(values, r[2]); maxIt = Math.max(maxIt, r[1][r[1].length - 1] || 1); });
    var rungs = c.milestones.filter(function (m) { return m <= maxIt; });
    document.getElementById("curves-hint").textContent = (metric ? metric.name : "metric") + " against iteration (the n-th value a run logged, what early stopping counts)" +
      (rungs.length ? "; dashed lines: the rungs where runs are judged, with how many were stopped there." : ".");
    var range = valueRange(values);
    if (!range) return note("curves", "No run has logged " + (metric ? metric.name : "a metric") + " yet.");
    var W = 1300, H = 400, L = 58, R = W - 16, T = 24, B = H - 46;
    var root = canvas("curves", W, H), logX = maxIt > 200 && rungs.length > 2;
    var x = scale(logX, 1, Math.max(maxIt, 2), L, R), y = scale(range.log, range.lo, range.hi, B, T);
    yAxis(root, y, L, R, 6, metric ? metric.name : "");
    xAxis(root, x, T, B, x.ticks(10).filter(function (v) { return v >= 1; }), "iteration" + (logX ? " (log)" : ""));
    drawRungs(root, x, rungs, T, B);
    var area = clip(root, "clip-curves", L, T, R - L, B - T), opacity = Math.max(0.12, Math.min(0.8, 6 / Math.sqrt(c.runs.length)));
    var lines = svg("g", { fill: "none", "stroke-width": 1.2, "stroke-opacity": opacity }, area), best = bestRun();
    c.runs.forEach(function (r) {
      var d = curvePath(r, x, y, range);
      if (d) svg("title", {}, svg("path", { d: d, stroke: COLOURS[runs.kind[r[0]]], class: "run" }, lines), runs.name[r[0]] + " · " + fmt(runs.value[r[0]]));
      var last = r[2].length - 1;
      if (runs.kind[r[0]] === "stopped" && finite(r[2][last])) svg("circle", { cx: x(r[1][last]), cy: y(Math.max(range.lo, Math.min(range.hi, r[2][last]))), r: 2.2, fill: COLOURS.stopped }, area);
    });
    c.runs.forEach(function (r) { if (r[0] === best) svg("path", { d: curvePath(r, x, y, range), fill: "none", stroke: "#1f2430", "stroke-width": 2.4 }, area); });
    legend("curves", kindsPresent().map(function (k) { return [KINDS[k], COLOURS[k]]; }).concat([["best run" + (best >= 0 ? " (" + runs.name[best] + ")" : ""), "#1f2430"]]));
  }
  function curvePath(r, x, y, range) {
    var d = "", pen = "M";
    r[2].forEach(function (v, j) {
      if (!finite(v)) { pen = "M"; return; }
      d += pen + x(r[1][j]).toFixed(1) + "," + y(Math.max(range.lo / 10, Math.min(range.hi * 10, v))).toFixed(1); pen = "L";
    });
    return d;
  }
  function drawRungs(root, x, rungs, T, B) {
    var g = svg("g", {}, root), lastX = -1e9, row = 0;
    rungs.forEach(function (m) {
      var px = x(m), stopped = runs.rung.filter(function (r) { return r === m; }).length;
      row = px - lastX < 90 ? row + 1 : 0; lastX = px;
      svg("line", { x1: px, x2: px, y1: T, y2: B, stroke: COLOURS.stopped, "stroke-dasharray": "4 4", "stroke-width": 1.2 }, g);
      svg("text", { x: px + 4, y: T + 10 + 13 * (row % 3), "font-size": 11, fill: "#9a5b0c" }, g, "rung " + m + (stopped ? " · " + stopped + " stopped" : ""));
    });
  }
  function bestRun() {
    var best = -1;
    runs.value.forEach(function (v, i) {
      if (finite(v) && (best < 0 || (maximize ? v > runs.value[best] : v < runs.value[best]))) best = i;
    });
    return best;
  }

  // --- best runs ---------------------------------------------------------------------
  function bestTable() {
    var b = data.best;
    if (!b.rows.length) return note("best", "No runs yet.");
    var table = tag("table", {}, tag("div", { class: "scroll" }, document.querySelector('[data-plot="best"]')));
    var head = tag("tr", {}, tag("thead", {}, table)), body = tag("tbody", {}, table);
    b.columns.forEach(function (c) { tag("th", {}, head, c); });
    b.rows.forEach(function (row) {
      var tr = tag("tr", {}, body);
      row.forEach(function (v) { tag("td", typeof v === "number" ? { class: "num" } : {}, tr, fmt(v)); });
    });
  }

  // --- draw everything, then say what drew (read by tests through --dump-dom) ---------
  [header, parallel, importance, timeline, curves, bestTable].forEach(function (draw) {
    try { draw(); } catch (error) { window.onerror(draw.name + ": " + error, "", 0); }
  });
  var plots = document.querySelectorAll("[data-plot]"), drawn = [], empty = [];
  plots.forEach(function (p) { (p.querySelector("svg.chart > *, table tr") ? drawn : empty).push(p.dataset.plot); });
  document.body.dataset.plots = plots.length;
  document.body.dataset.drawn = drawn.join(",");
  document.body.dataset.empty = empty.join(",");
  document.body.dataset.rendered = "true";
})();
