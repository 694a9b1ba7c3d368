// raysweep report: draws the views of one sweep as SVG from the JSON in #report-data.
// Plain JavaScript without libraries, so the page works offline and from file://.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var KINDS = { finished: "finished", stopped: "early-stopped", crashed: "crashed / failed", running: "running" };
  var COLOURS = { finished: "#3b6fb6", stopped: "#e08a1e", crashed: "#d1495b", running: "#8a8f98" };
  var INK = "#1f2430";
  var RAMP = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"]; // worst .. best (viridis)
  var metric = data.sweep.metric, runs = data.runs, count = runs.name.length;
  var maximize = !!metric && metric.goal === "maximize";
  var metricName = metric ? metric.name : "the metric";

  // --- DOM and SVG helpers -----------------------------------------------------------
  function make(node, attrs, parent, text) {
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function svg(name, attrs, parent, text) { return make(document.createElementNS(NS, name), attrs, parent, text); }
  function tag(name, attrs, parent, text) { return make(document.createElement(name), attrs, parent, text); }
  function plot(name) { return document.querySelector('[data-plot="' + name + '"]'); }
  function canvas(name, width, height) {
    return svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", class: "chart" }, plot(name));
  }
  function note(name, text) { tag("p", { class: "note" }, plot(name), text); }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1).replace("e+", "e");
    return String(+v.toPrecision(4));
  }
  function runTitle(i) { return runs.name[i] + " · " + metricName + " " + fmt(runs.value[i]); }

  // --- scales ------------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    var span = (hi - lo) / n, step = Math.pow(10, Math.floor(Math.log10(span))), ratio = span / step;
    step *= ratio >= 7.5 ? 10 : ratio >= 3.5 ? 5 : ratio >= 1.5 ? 2 : 1;
    var out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  // Maps [lo, hi] to [r0, r1], values outside drawn at the edge; log scales tick at powers of ten.
  function scale(log, lo, hi, r0, r1) {
    if (lo === hi) { lo = log ? lo / 2 : lo - 1; hi = log ? hi * 2 : hi + 1; }
    var t = log ? Math.log10 : function (v) { return v; }, a = t(lo), b = t(hi);
    var f = function (v) { return r0 + (t(Math.max(lo, Math.min(hi, v))) - a) / (b - a) * (r1 - r0); };
    f.range0 = r0; f.range1 = r1; f.log = log;
    f.ticks = function (n) {
      if (!log) return niceTicks(lo, hi, n);
      var out = [];
      for (var e = Math.ceil(a - 1e-9); e <= Math.floor(b + 1e-9); e++) out.push(Math.pow(10, e));
      return out.length >= 2 ? out : niceTicks(lo, hi, 3).filter(function (v) { return v > 0; });
    };
    return f;
  }
  // The metric's range: the best value always shows, the worst 2% (diverged runs) go to the edge.
  function valueRange(values) {
    var v = values.filter(finite).sort(function (x, y) { return x - y; });
    if (!v.length) return null;
    var q = function (p) { return v[Math.round(p * (v.length - 1))]; };
    var lo = maximize ? q(0.02) : v[0], hi = maximize ? v[v.length - 1] : q(0.98);
    var log = lo > 0 && hi / lo > 50, pad = (hi - lo) * 0.04;
    return log ? { lo: lo / 1.15, hi: hi * 1.15, log: true } : { lo: lo - pad, hi: hi + pad, log: false };
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
    return function (v) { return maximize ? s(v) : 1 - s(v); };
  }

  // --- axes, legends -----------------------------------------------------------------
  function yAxis(root, y, x0, x1, n, label) {
    var g = svg("g", { class: "grid" }, root), mid = (y.range0 + y.range1) / 2;
    svg("text", { x: 14, y: mid, transform: "rotate(-90 14 " + mid + ")", "text-anchor": "middle", class: "muted" },
        g, label + (y.log ? " (log)" : ""));
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
  // items: [label, colour, glyph]; glyph is "line", a run kind (its mark) or absent (a dot)
  function legend(name, items) {
    var box = tag("div", { class: "legend" }, plot(name));
    items.forEach(function (item) {
      var span = tag("span", {}, box);
      if (!item[2]) tag("span", { class: "dot", style: "background:" + item[1] }, span);
      else {
        var icon = svg("svg", { width: 14, height: 12, class: "glyph" }, span);
        if (item[2] === "line") svg("path", { d: "M0,6H14", stroke: item[1], "stroke-width": 2.4 }, icon);
        else mark(icon, item[2], 7, 6, item[0]);
      }
      span.appendChild(document.createTextNode(item[0]));
    });
  }
  function kindsPresent() {
    return Object.keys(KINDS).filter(function (k) { return runs.kind.indexOf(k) >= 0; });
  }
  function kindItems(glyphs) {
    return kindsPresent().map(function (k) { return [KINDS[k], COLOURS[k], glyphs ? k : null]; });
  }

  // --- the page: one card per view, then the header ----------------------------------
  var VIEWS = [
    ["parallel", "Parallel coordinates", "One line per run through its parameter values to " + metricName +
      ", coloured by it: dark is best, yellow worst. Hover a line for its run."],
    ["importance", "Parameter importance", "With respect to " + metricName +
      ": random-forest importance and Pearson correlation, over the runs that have a value."],
    ["timeline", "Metric over time", "One mark per run at its creation time; the line is the best value so far." +
      " Crashed runs without a value sit on the time axis."],
    ["curves", "Learning curves", metricName + " against iteration (the n-th value a run logged, what early " +
      "stopping counts). Dashed lines are the rungs where runs are judged, with how many were stopped there;" +
      " ✕ marks where a run crashed."],
    ["best", "Best runs", "The ten best runs by " + metricName + ", with the parameters they were given."],
    ["config", "Sweep config", "As given to raysweep (sweep.yaml)."]];
  function cards() {
    var main = document.getElementById("views");
    VIEWS.forEach(function (view) {
      var card = tag("section", { class: view[0] === "importance" || view[0] === "timeline" ? "card" : "card wide" }, main);
      tag("h2", {}, card, view[1]);
      tag("p", { class: "hint" }, card, view[2]);
      if (view[0] !== "config") tag("div", { class: "plot", "data-plot": view[0] }, card);
    });
    tag("pre", {}, main.lastChild, data.sweep.yaml);
  }
  function header() {
    var s = data.sweep;
    document.getElementById("title").textContent = (s.name || "sweep") + " · " + s.id;
    document.getElementById("subtitle").textContent = [s.method + " sweep",
      metric ? "metric " + metric.name + " (" + metric.goal + ")" : "no metric",
      s.state === "running" ? "still running: this report shows the runs so far" : s.state, s.path].join(" · ");
    var chips = document.getElementById("counts");
    tag("span", { class: "chip" }, chips, count + " runs");
    kindsPresent().forEach(function (kind) {
      var chip = tag("span", { class: "chip" }, chips), n = runs.kind.filter(function (k) { return k === kind; }).length;
      tag("span", { class: "dot", style: "background:" + COLOURS[kind] }, chip);
      chip.appendChild(document.createTextNode(n + " " + KINDS[kind]));
    });
    document.getElementById("footer").textContent = "raysweep report, generated " + s.generated + " from " + s.path;
  }

  // --- parallel coordinates ----------------------------------------------------------
  function parallel() {
    if (!data.axes.length) return note("parallel", "The sweep has no swept parameters yet.");
    var range = metric && valueRange(runs.value), cols = data.axes.slice();
    var W = 1300, H = 430, top = 50, bottom = H - 24, left = 50, right = W - (range ? 130 : 40);
    var root = canvas("parallel", W, H), good = range ? goodness(range) : null;
    if (range) cols.push({ label: metric.name + (maximize ? " ↑" : " ↓"), kind: range.log ? "log" : "linear",
                           values: runs.value, range: range });
    var step = (right - left) / Math.max(1, cols.length - 1);
    cols.forEach(function (col, i) {
      col.x = cols.length > 1 ? left + i * step : (left + right) / 2;
      col.y = axisScale(col, top, bottom);
    });
    var rank = function (i) { return good && finite(runs.value[i]) ? good(runs.value[i]) : -1; };
    var order = runs.name.map(function (_, i) { return i; }).sort(function (a, b) { return rank(a) - rank(b); });
    var lines = svg("g", { fill: "none", "stroke-width": count > 500 ? 0.8 : 1.4,
                           "stroke-opacity": Math.max(0.15, Math.min(0.85, 8 / Math.sqrt(count))) }, root);
    order.forEach(function (i) { // worst first, so the best runs are drawn on top
      var d = "", pen = "M";
      cols.forEach(function (col) {
        var v = col.values[i];
        if (v === null || v === undefined) { pen = "M"; return; }
        d += pen + col.x.toFixed(1) + "," + col.y(v).toFixed(1); pen = "L";
      });
      var stroke = rank(i) >= 0 ? colour(rank(i)) : "#c3c8d0";
      svg("title", {}, svg("path", { d: d, stroke: stroke, class: "run" }, lines), runTitle(i));
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
    var v = col.values.filter(finite), r = col.range || (v.length ? {
      lo: Math.min.apply(null, v), hi: Math.max.apply(null, v), log: col.kind === "log" } : { lo: 0, hi: 1, log: false });
    var s = scale(r.log, r.lo, r.hi, bottom, top), integers = v.length && v.every(Number.isInteger);
    var g = function (value) { return s(value); };
    g.ticks = function (n) { return s.ticks(n).filter(function (t) { return !integers || Number.isInteger(t); }); };
    return g;
  }
  function drawAxis(root, col, top, bottom) {
    var g = svg("g", { class: "axis" }, root), ticks = col.y.ticks(5), every = Math.ceil(ticks.length / 14);
    svg("line", { x1: col.x, x2: col.x, y1: top, y2: bottom, "stroke-width": 1.2 }, g);
    ticks.forEach(function (v, i) {
      if (i % every) return;
      svg("line", { x1: col.x - 3, x2: col.x + 3, y1: col.y(v), y2: col.y(v) }, g);
      svg("text", { x: col.x + 6, y: col.y(v) + 4, class: "halo" }, g, col.kind === "category" ? col.categories[v] : fmt(v));
    });
    var dot = col.label.lastIndexOf(".");
    if (dot > 0) svg("text", { x: col.x, y: top - 24, "text-anchor": "middle", class: "muted" }, g, col.label.slice(0, dot + 1));
    svg("text", { x: col.x, y: top - 10, "text-anchor": "middle", class: "axis-title" },
        g, col.label.slice(dot + 1) + (col.kind === "log" ? " (log)" : ""));
  }
  function colourBar(root, x, top, bottom) {
    var gradient = svg("linearGradient", { id: "ramp", x1: 0, x2: 0, y1: 1, y2: 0 }, svg("defs", {}, root));
    RAMP.forEach(function (c, i) { svg("stop", { offset: i / (RAMP.length - 1), "stop-color": c }, gradient); });
    svg("rect", { x: x, y: top, width: 12, height: bottom - top, fill: "url(#ramp)", rx: 2 }, root);
    svg("text", { x: x + 18, y: top + 9, class: "muted" }, root, "best");
    svg("text", { x: x + 18, y: bottom, class: "muted" }, root, "worst");
  }

  // --- parameter importance ----------------------------------------------------------
  function importance() {
    var rows = data.importance.rows, shown = rows.slice(0, 25);
    if (data.importance.note) note("importance", data.importance.note);
    if (!rows.length) return note("importance", metric ? "Needs runs with a value of " + metricName + "." : "The sweep has no metric.");
    var table = tag("table", {}, plot("importance")), head = tag("tr", {}, tag("thead", {}, table));
    ["Parameter", "Importance", "", "Correlation", ""].forEach(function (h) { tag("th", {}, head, h); });
    var body = tag("tbody", {}, table), max = Math.max.apply(null, rows.map(function (r) { return r[1] || 1e-12; }));
    shown.forEach(function (r) {
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
    if (rows.length > shown.length) note("importance", (rows.length - shown.length) + " less important features are left out.");
  }

  // --- metric over time --------------------------------------------------------------
  function timeline() {
    var range = metric && valueRange(runs.value);
    if (!range) return note("timeline", metric ? "No run has a value of " + metricName + " yet." : "The sweep has no metric.");
    var W = 640, H = 340, L = 58, R = W - 14, T = 12, B = H - 46, root = canvas("timeline", W, H);
    var tmax = Math.max.apply(null, runs.t.filter(finite).concat([1]));
    var unit = tmax < 120 ? [1, "s"] : tmax < 7200 ? [60, "min"] : [3600, "h"], end = tmax / unit[0];
    var x = scale(false, -0.02 * end, 1.03 * end, L, R), y = scale(range.log, range.lo, range.hi, B, T);
    var started = data.sweep.first_run ? ", started " + data.sweep.first_run.slice(0, 16).replace("T", " ") + " UTC" : "";
    yAxis(root, y, L, R, 5, metric.name);
    xAxis(root, x, T, B, x.ticks(6).filter(function (v) { return v >= 0; }), "time since the first run (" + unit[1] + ")" + started);
    var area = clip(root, "clip-timeline", L, T - 4, R - L, B - T + 8), d = "";
    runs.best.forEach(function (b, i) {
      if (!finite(b)) return;
      var px = x(runs.t[i] / unit[0]).toFixed(1);
      d += (d ? "H" + px + "V" : "M" + px + ",") + y(b).toFixed(1);
    });
    if (d) svg("path", { d: d + "H" + R, fill: "none", stroke: INK, "stroke-width": 1.8 }, area);
    runs.value.forEach(function (v, i) {
      var px = x(runs.t[i] / unit[0]);
      var node = finite(v) ? mark(area, runs.kind[i], px, y(v), runTitle(i))
                           : mark(root, runs.kind[i], px, B + 2, runTitle(i)); // no value: on the time axis
      node.classList.add("run");
    });
    legend("timeline", kindItems(true).concat([["best so far", INK, "line"]]));
  }
  // finished ●, early-stopped ▼, crashed ✕, running ○
  function mark(parent, kind, px, py, title) {
    var c = COLOURS[kind], node;
    if (kind === "stopped") node = svg("path", { d: "M" + (px - 4.5) + "," + (py - 3.5) + "h9l-4.5,7.5z", fill: c }, parent);
    else if (kind === "crashed") node = svg("path", { d: "M" + (px - 4) + "," + (py - 4) + "l8,8m0,-8l-8,8", stroke: c, "stroke-width": 2 }, parent);
    else node = svg("circle", { cx: px, cy: py, r: 3.8, fill: kind === "running" ? "#fff" : c, stroke: c, "stroke-width": 1.5 }, parent);
    svg("title", {}, node, title);
    return node;
  }

  // --- learning curves ---------------------------------------------------------------
  function curves() {
    var c = data.curves, values = [], maxIt = 1;
    c.runs.forEach(function (r) { values.push.apply(values, r[2]); maxIt = Math.max(maxIt, r[1][r[1].length - 1]); });
    var range = valueRange(values), rungs = c.milestones.filter(function (m) { return m <= maxIt; });
    if (!range) return note("curves", "No run has logged " + metricName + " yet.");
    var W = 1300, H = 400, L = 58, R = W - 16, T = 24, B = H - 46, root = canvas("curves", W, H);
    var logX = maxIt > 200 && rungs.length > 2, best = bestRun();
    var x = scale(logX, 1, Math.max(maxIt, 2), L, R), y = scale(range.log, range.lo, range.hi, B, T);
    yAxis(root, y, L, R, 6, metric ? metric.name : "");
    xAxis(root, x, T, B, x.ticks(10).filter(function (v) { return v >= 1; }), "iteration" + (logX ? " (log)" : ""));
    drawRungs(root, x, rungs, T, B);
    var area = clip(root, "clip-curves", L, T, R - L, B - T);
    var lines = svg("g", { fill: "none", "stroke-width": 1.2,
                           "stroke-opacity": Math.max(0.12, Math.min(0.8, 6 / Math.sqrt(c.runs.length))) }, area);
    c.runs.forEach(function (r) {
      var kind = runs.kind[r[0]], last = r[2].length - 1;
      svg("title", {}, svg("path", { d: curvePath(r, x, y), stroke: COLOURS[kind], class: "run" }, lines), runTitle(r[0]));
      if (kind === "stopped" && finite(r[2][last])) svg("circle", { cx: x(r[1][last]), cy: y(r[2][last]), r: 2.2, fill: COLOURS.stopped }, area);
      if (kind === "crashed" && finite(r[2][last])) mark(area, kind, x(r[1][last]), y(r[2][last]), runTitle(r[0]));
    });
    c.runs.forEach(function (r) {
      if (r[0] === best) svg("path", { d: curvePath(r, x, y), fill: "none", stroke: INK, "stroke-width": 2.4 }, area);
    });
    legend("curves", kindItems(false).concat([["best run" + (best >= 0 ? " (" + runs.name[best] + ")" : ""), INK, "line"]]));
  }
  function curvePath(r, x, y) { // a gap where a value is NaN or infinite
    var d = "", pen = "M";
    r[2].forEach(function (v, j) {
      if (!finite(v)) { pen = "M"; return; }
      d += pen + x(r[1][j]).toFixed(1) + "," + y(v).toFixed(1); pen = "L";
    });
    return d;
  }
  function drawRungs(root, x, rungs, T, B) {
    var g = svg("g", { class: "rungs" }, root), lastX = -1e9, row = 0;
    rungs.forEach(function (m) {
      var px = x(m), stopped = runs.rung.filter(function (r) { return r === m; }).length, end = px > x.range1 - 130;
      row = px - lastX < 90 ? row + 1 : 0; lastX = px;
      svg("line", { x1: px, x2: px, y1: T, y2: B }, g);
      svg("text", { x: end ? px - 4 : px + 4, y: T + 10 + 13 * (row % 3), "text-anchor": end ? "end" : "start" },
          g, "rung " + m + (stopped ? " · " + stopped + " stopped" : ""));
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
    if (!data.best.rows.length) return note("best", "No runs yet.");
    var table = tag("table", {}, tag("div", { class: "scroll" }, plot("best")));
    var head = tag("tr", {}, tag("thead", {}, table)), body = tag("tbody", {}, table);
    data.best.columns.forEach(function (c) { tag("th", {}, head, c); });
    data.best.rows.forEach(function (row) {
      var tr = tag("tr", {}, body);
      row.forEach(function (v) { tag("td", typeof v === "number" ? { class: "num" } : {}, tr, fmt(v)); });
    });
  }

  // --- draw everything, then say what drew (tests read it through --dump-dom) --------
  [cards, header, parallel, importance, timeline, curves, bestTable].forEach(function (draw) {
    try { draw(); } catch (error) { window.onerror(draw.name + ": " + error, "", 0); }
  });
  var plots = document.querySelectorAll("[data-plot]"), drawn = [], empty = [], marks = [];
  plots.forEach(function (p) {
    (p.querySelector("svg.chart > *, table tr") ? drawn : empty).push(p.dataset.plot);
    marks.push(p.dataset.plot + ":" + p.querySelectorAll("svg.chart .run, tbody tr").length);
  });
  document.body.dataset.plots = plots.length;
  document.body.dataset.drawn = drawn.join(",");
  document.body.dataset.empty = empty.join(",");
  document.body.dataset.runs = marks.join(","); // runs drawn (lines, marks, table rows) per view
  document.body.dataset.rendered = "true";
})();
