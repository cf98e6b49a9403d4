/* warmcheck HTML report: draws the plots from the JSON document in #warmcheck-data with plotly.js.
 *
 * Every string in the document is data (run names, tags, messages from logs). It reaches the page only
 * through textContent, or through plotly as text with &, < and > written as entities (plotly reads a
 * few tags such as <b> and <a href> in names, titles and hover labels: ptext() keeps them literal),
 * and never inside a hovertemplate (where %{...} would be read).
 * Per-run plots are drawn when the run is open and scrolled into view (IntersectionObserver), once.
 * window.__warmcheckReady is set when the overview plots (overlays, comparison, sweep) are drawn.
 */
(function () {
  "use strict";
  window.__warmcheckStartAt = performance.now();  /* plotly.js compiled and run by now (for the bench) */
  var D = JSON.parse(document.getElementById("warmcheck-data").textContent);
  window.__warmcheckParsedAt = performance.now();
  var CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  var LINE = {
    observed: { color: "#1f77b4", width: 2, dash: "solid" },
    peak: { color: "#1f77b4", width: 1, dash: "dot" },
    configured: { color: "#d62728", width: 1.8, dash: "dash" },
    divergence: { color: "#9467bd", width: 1.8, dash: "solid" },
    nonfinite: { color: "#000000", width: 1.5, dash: "dot" },
    compare: { color: "#d62728", width: 1.5, dash: "dash" }
  };
  var MARK = { WC301: "#ff7f0e", WC304: "#ffbb78", WC302: "#ff7f0e", WC303: "#8c564b" };
  var TITLES = { lr: "learning rate", loss: "loss", grad_norm: "gradient norm" };
  var SERIES_COLOUR = { lr: "#444444", loss: "#333333", grad_norm: "#2ca02c" };
  var drawn = { plots: 0, runs: {} };
  window.__warmcheck = drawn;

  function ptext(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function shorten(s, n) {  /* a long name cut at its start (the end of a path tells runs apart) */
    s = String(s);
    return s.length > n ? "\u2026" + s.slice(s.length - n + 1) : s;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* min/max decimation for the overlays (the document's series are already at most D.limit points) */
  function thin(x, y, limit) {
    var n = x.length;
    if (n <= limit) return [x, y];
    var buckets = Math.max(1, Math.floor(limit / 2)), size = Math.ceil(n / buckets), ox = [], oy = [];
    for (var b = 0; b < n; b += size) {
      var lo = -1, hi = -1, gap = -1, end = Math.min(n, b + size);
      for (var i = b; i < end; i++) {
        var v = y[i];
        if (v === null) { if (gap < 0) gap = i; continue; }
        if (lo < 0 || v < y[lo]) lo = i;
        if (hi < 0 || v > y[hi]) hi = i;
      }
      var keep = [lo, hi, gap].filter(function (k) { return k >= 0; }).sort(function (a, c) { return a - c; });
      for (var k = 0; k < keep.length; k++) {
        if (k && keep[k] === keep[k - 1]) continue;
        ox.push(x[keep[k]]); oy.push(y[keep[k]]);
      }
    }
    return [ox, oy];
  }

  function wideRange(y) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < y.length; i++) {
      var v = y[i];
      if (v === null) continue;
      if (v <= 0) return false;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi > 0 && lo > 0 && hi / lo > 20;
  }

  function vline(x, style, label) {
    return { type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: style,
             showlegend: true, name: ptext(label), legendgroup: ptext(label) };
  }

  function layout(ytitle, log, extra) {
    var l = {
      height: 330, margin: { l: 64, r: 12, t: 12, b: 40 }, hovermode: "closest",
      xaxis: { title: { text: "step" }, zeroline: false, exponentformat: "e" },
      yaxis: { title: { text: ptext(ytitle) }, type: log ? "log" : "linear", exponentformat: "e", zeroline: false },
      legend: { orientation: "h", y: -0.22, font: { size: 11 } }, shapes: [], paper_bgcolor: "#fff"
    };
    for (var k in extra) l[k] = extra[k];
    return l;
  }

  function figure(fig, key) {
    var box = el("figure", "plot");
    box.setAttribute("data-plot", key);
    var cap = el("figcaption", null, fig.caption);
    var lab = el("label", "logtoggle"), cb = el("input", "logy");
    cb.type = "checkbox";
    lab.appendChild(cb);
    lab.appendChild(document.createTextNode(" log y"));
    cap.appendChild(lab);
    box.appendChild(cap);
    box.appendChild(el("div", "plotdiv"));
    return box;
  }

  /* draw into an existing <figure class="plot">: plotly in its .plotdiv, the log toggle wired */
  function draw(box, traces, lay) {
    var div = box.querySelector(".plotdiv"), cb = box.querySelector("input.logy");
    cb.checked = lay.yaxis.type === "log";
    cb.addEventListener("change", function () {
      Plotly.relayout(div, { "yaxis.type": cb.checked ? "log" : "linear", "yaxis.autorange": true });
    });
    return Plotly.newPlot(div, traces, lay, CONFIG).then(function () { drawn.plots += 1; return div; });
  }

  function lookup(p, x) {  /* the drawn value at step x (or the nearest drawn step after it) */
    var lo = 0, hi = p.x.length - 1;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (p.x[mid] < x) lo = mid + 1; else hi = mid; }
    return p.y[lo];
  }

  function panelPlot(run, p) {
    var traces = [{
      x: p.x, y: p.y, type: "scatter", mode: p.x.length <= 300 ? "lines+markers" : "lines",
      name: ptext(p.tag), line: { width: 1.3, color: SERIES_COLOUR[p.role] }, marker: { size: 3 },
      hovertemplate: "step %{x}<br>%{y:.6g}<extra></extra>"
    }];
    var byCode = {};
    p.marks.forEach(function (m) { (byCode[m.code] = byCode[m.code] || []).push(m); });
    Object.keys(byCode).sort().forEach(function (code) {
      var ms = byCode[code];
      traces.push({
        x: ms.map(function (m) { return m.x; }),
        y: ms.map(function (m) { return m.y !== null && isFinite(m.y) ? m.y : lookup(p, m.x); }),
        text: ms.map(function (m) { return ptext(m.label); }), type: "scatter", mode: "markers",
        name: ptext(code + " at step" + (ms.length > 1 ? "s " : " ") + ms.map(function (m) { return m.x; }).slice(0, 6).join(", ")
                    + (ms.length > 6 ? ", ..." : "")),
        marker: { symbol: "triangle-down", size: 11, color: MARK[code] || "#ff7f0e", line: { width: 1, color: "#333" } },
        hovertemplate: "%{text}<extra></extra>"
      });
    });
    var shapes = p.lines.map(function (l) { return vline(l.x, LINE[l.kind] || LINE.divergence, l.label); });
    p.spans.forEach(function (s) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: s.x0, x1: s.x1, y0: 0, y1: 1, fillcolor: "#1f77b4",
                    opacity: 0.12, line: { width: 0 }, showlegend: true, name: ptext(s.label), layer: "below" });
    });
    var ytitle = p.role === "lr" ? "learning rate" : p.role === "grad_norm" ? "grad norm (" + p.tag + ")" : "loss (" + p.tag + ")";
    var lay = layout(ytitle, p.role !== "lr" && wideRange(p.y), { shapes: shapes, hovermode: "x unified" });
    var caption = TITLES[p.role] + ": " + p.tag + " (" + p.n + " points" + (p.shown < p.n ? ", " + p.shown + " drawn" : "") + ")";
    return { traces: traces, layout: lay, caption: caption };
  }

  function syncZoom(divs) {  /* zooming one panel of a run zooms the others to the same steps */
    var busy = false;
    divs.forEach(function (div) {
      div.on("plotly_relayout", function (ev) {
        if (busy) return;
        var upd = null;
        if (ev["xaxis.range[0]"] !== undefined) upd = { "xaxis.range": [ev["xaxis.range[0]"], ev["xaxis.range[1]"]] };
        else if (ev["xaxis.autorange"]) upd = { "xaxis.autorange": true };
        if (!upd) return;
        busy = true;
        Promise.all(divs.filter(function (d) { return d !== div; }).map(function (d) { return Plotly.relayout(d, upd); }))
          .then(function () { busy = false; }, function () { busy = false; });
      });
    });
  }

  function drawRun(i, box) {
    if (drawn.runs[i] !== undefined) return;
    drawn.runs[i] = false;
    var run = D.runs[i];
    if (!run.panels.length) {
      box.appendChild(el("p", "info", "No learning-rate, loss or gradient-norm series to plot."));
      drawn.runs[i] = true;
      return;
    }
    var jobs = run.panels.map(function (p) {
      var fig = panelPlot(run, p), f = figure(fig, "run-" + i + "-" + p.role);
      box.appendChild(f);
      return draw(f, fig.traces, fig.layout);
    });
    Promise.all(jobs).then(function (divs) { syncZoom(divs); drawn.runs[i] = true; });
  }

  function openRun(i) {
    var d = document.getElementById("run-" + i);
    if (!d) return;
    d.classList.remove("hidden");
    d.open = true;
    d.scrollIntoView({ block: "start" });
  }

  /* all runs' series of one role on one plot: per-run traces for a few runs, else two traces
     (stable / unstable) with gaps between runs and the run named on hover */
  function overlay(box, role, runs, extra) {
    var have = runs.filter(function (r) { return r.run.panels.some(function (p) { return p.role === role; }); });
    if (!have.length) {
      box.querySelector(".plotdiv").appendChild(el("p", "info", "No run has a " + TITLES[role] + " series."));
      return Promise.resolve(null);
    }
    var limit = Math.max(60, Math.min(D.limit, Math.floor(200000 / have.length)));
    var traces = [], ally = [];
    if (have.length <= 30 || extra.perRun) {
      have.forEach(function (r) {
        var p = r.run.panels.filter(function (q) { return q.role === role; })[0], xy = thin(p.x, p.y, limit);
        var fullName = ptext((r.prefix || "") + r.run.name);
        ally = ally.concat(xy[1]);
        var t = { x: xy[0], y: xy[1], type: "scatter", mode: "lines", name: ptext((r.prefix || "") + shorten(r.run.short, 48)),
                  line: { width: r.width || 1.2 }, customdata: xy[0].map(function () { return r.index; }),
                  text: xy[0].map(function () { return fullName; }),
                  hovertemplate: "%{text}<br>step %{x}: %{y:.6g}<extra></extra>" };
        if (r.colour) t.line.color = r.colour;
        traces.push(t);
      });
    } else {
      var groups = [{ name: "stable runs", colour: "rgba(90,90,90,0.35)", runs: [] },
                    { name: "unstable runs", colour: "rgba(214,39,40,0.7)", runs: [] }];
      have.forEach(function (r) { groups[r.run.unstable ? 1 : 0].runs.push(r); });
      groups.forEach(function (g) {
        if (!g.runs.length) return;
        var x = [], y = [], text = [], cd = [];
        g.runs.forEach(function (r) {
          var p = r.run.panels.filter(function (q) { return q.role === role; })[0], xy = thin(p.x, p.y, limit), name = ptext(r.run.name);
          for (var k = 0; k < xy[0].length; k++) { x.push(xy[0][k]); y.push(xy[1][k]); text.push(name); cd.push(r.index); }
          x.push(null); y.push(null); text.push(""); cd.push(-1);
        });
        ally = ally.concat(y);
        traces.push({ x: x, y: y, text: text, customdata: cd, type: "scatter", mode: "lines",
                      name: ptext(g.name + " (" + g.runs.length + ")"), line: { width: 1, color: g.colour },
                      hovertemplate: "%{text}<br>step %{x}: %{y:.6g}<extra></extra>" });
      });
    }
    var shapes = (extra.lines || []).map(function (l) { return vline(l.x, LINE[l.kind] || LINE.compare, l.label); });
    (extra.marks || []).forEach(function (m) { traces.push(m); });
    var lay = layout(TITLES[role], role !== "lr" && wideRange(ally), { shapes: shapes, hovermode: "closest", height: 380,
      legend: { orientation: "v", x: 1.02, y: 1, font: { size: 10 } }, margin: { l: 64, r: 12, t: 12, b: 44 } });
    return draw(box, traces, lay).then(function (div) {
      if (extra.clickable) {
        div.on("plotly_click", function (ev) {
          var i = ev.points && ev.points[0] ? ev.points[0].customdata : -1;
          if (typeof i === "number" && i >= 0) openRun(i);
        });
      }
      return div;
    });
  }

  function plotBox(key) { return document.querySelector('figure.plot[data-plot="' + key + '"]'); }

  function overlays() {
    var runs = D.runs.map(function (r, i) { return { run: r, index: i }; });
    return [overlay(plotBox("overlay-lr"), "lr", runs, { clickable: true }),
            overlay(plotBox("overlay-loss"), "loss", runs, { clickable: true })];
  }

  function compare() {
    var c = D.compare;
    if (!c || c.run === null || c.run === undefined || !D.runs[c.run]) return [];
    var runs = [{ run: D.runs[c.run], index: c.run, prefix: "run: ", colour: "#1f77b4", width: 2.2 }];
    c.baselines.forEach(function (b) {
      if (D.baselines[b]) runs.push({ run: D.baselines[b], index: -1, prefix: "baseline: ", colour: "#888888", width: 1.2 });
    });
    var lrLines = [], lossLines = [];
    if (c.lr_step !== null) lrLines.push({ x: c.lr_step, kind: "compare", label: "LR first differs: step " + c.lr_step });
    if (c.run_warmup_end !== null) lrLines.push({ x: c.run_warmup_end, kind: "observed", label: "run's warmup end: step " + c.run_warmup_end });
    if (c.baseline_warmup_end !== null && c.baseline_warmup_end !== c.run_warmup_end)
      lrLines.push({ x: c.baseline_warmup_end, kind: "peak", label: "baseline's warmup end: step " + c.baseline_warmup_end });
    if (c.loss_step !== null) lossLines.push({ x: c.loss_step, kind: "compare", label: "loss leaves the band: step " + c.loss_step });
    c.new_nonfinite.slice(0, 20).forEach(function (s) { lossLines.push({ x: s, kind: "nonfinite", label: "new NaN/Inf: step " + s }); });
    var marks = [];
    var loss = D.runs[c.run].panels.filter(function (p) { return p.role === "loss"; })[0];
    if (loss && c.new_spikes.length) {
      marks.push({ x: c.new_spikes, y: c.new_spikes.map(function (s) { return lookup(loss, s); }), type: "scatter", mode: "markers",
                   name: "new spikes", marker: { symbol: "triangle-down", size: 11, color: "#ff7f0e" },
                   hovertemplate: "new spike: step %{x}<extra></extra>" });
    }
    if (c.loss_step !== null && c.band && c.band.length === 2) {
      var lo = c.band[0], hi = c.band[1];
      marks.push({ x: [c.loss_step], y: [(lo + hi) / 2], type: "scatter", mode: "markers", name: "baseline band at step " + c.loss_step,
                   marker: { symbol: "line-ew", size: 14, color: "#d62728", line: { width: 2, color: "#d62728" } },
                   error_y: { type: "data", array: [(hi - lo) / 2], visible: true, color: "#d62728", thickness: 2, width: 8 },
                   hovertemplate: "baseline band " + lo.toPrecision(4) + " .. " + hi.toPrecision(4) + "<extra></extra>" });
      if (c.value && c.value.length === 1) {
        marks.push({ x: [c.loss_step], y: [c.value[0]], type: "scatter", mode: "markers", name: "run (smoothed) at step " + c.loss_step,
                     marker: { symbol: "circle-open", size: 12, color: "#d62728", line: { width: 2 } },
                     hovertemplate: "run (smoothed) %{y:.4g}<extra></extra>" });
      }
    }
    return [overlay(plotBox("compare-lr"), "lr", runs, { perRun: true, lines: lrLines }),
            overlay(plotBox("compare-loss"), "loss", runs, { perRun: true, lines: lossLines, marks: marks })];
  }

  /* the sweep's runs by their first two numeric varied values (or the first one and the final loss):
     one marker per run, or, when runs share a cell of the grid, one marker per cell sized by its runs
     and coloured by the share of them that were unstable */
  function sweep() {
    var s = D.sweep, box = plotBox("sweep");
    if (!s || !box || !s.keys.length) return [];
    var numeric = s.keys.filter(function (k) {
      return s.points.every(function (p) { return p.cfg[k] === null || typeof p.cfg[k] === "number"; });
    });
    var kx = numeric[0] !== undefined ? numeric[0] : s.keys[0], ky = numeric[1];
    function yOf(p) { return ky !== undefined ? p.cfg[ky] : p.final_loss; }
    var cells = {}, order = [], biggest = 1;
    s.points.forEach(function (p) {
      var x = p.cfg[kx], y = yOf(p);
      if (x === null || y === null || x === undefined || y === undefined) return;
      var key = JSON.stringify([x, y]);
      if (!cells[key]) { cells[key] = { x: x, y: y, n: 0, bad: 0 }; order.push(key); }
      cells[key].n += 1;
      if (p.unstable) cells[key].bad += 1;
      biggest = Math.max(biggest, cells[key].n);
    });
    var traces, grouped = ky !== undefined && biggest > 1;
    if (grouped) {
      var cs = order.map(function (k) { return cells[k]; });
      traces = [{
        x: cs.map(function (c) { return c.x; }), y: cs.map(function (c) { return c.y; }),
        text: cs.map(function (c) {
          return ptext(kx + " = " + c.x + ", " + ky + " = " + c.y + ": " + c.bad + " of " + c.n + " runs unstable");
        }),
        type: "scatter", mode: "markers", name: "runs per cell", showlegend: false,
        marker: { size: cs.map(function (c) { return 12 + 26 * Math.sqrt(c.n / biggest); }),
                  color: cs.map(function (c) { return c.bad / c.n; }), cmin: 0, cmax: 1,
                  colorscale: [[0, "#1f77b4"], [1, "#d62728"]], line: { width: 1, color: "#333" },
                  colorbar: { title: { text: "unstable share" }, thickness: 12 } },
        hovertemplate: "%{text}<extra></extra>"
      }];
    } else {
      traces = [false, true].map(function (bad) {
        var pts = s.points.filter(function (p) { return p.unstable === bad; });
        return { x: pts.map(function (p) { return p.cfg[kx]; }), y: pts.map(yOf),
                 text: pts.map(function (p) { return ptext(p.name); }),
                 customdata: pts.map(function (p) { return p.run === null ? -1 : p.run; }),
                 type: "scatter", mode: "markers", name: bad ? "unstable" : "stable",
                 marker: { size: 11, color: bad ? "#d62728" : "#1f77b4", symbol: bad ? "x" : "circle" },
                 hovertemplate: "%{text}<br>%{x}, %{y}<extra></extra>" };
      });
    }
    function numbers(f) { return s.points.map(f).filter(function (v) { return typeof v === "number"; }); }
    var xs = numbers(function (p) { return p.cfg[kx]; }), ys = numbers(yOf);
    var lay = layout(ky !== undefined ? ky : "final loss", ys.length > 0 && wideRange(ys), {});
    lay.xaxis.title.text = ptext(kx);
    if (xs.length && wideRange(xs)) lay.xaxis.type = "log";
    return [draw(box, traces, lay).then(function (div) {
      div.setAttribute("data-grouped", grouped ? "1" : "0");
      div.on("plotly_click", function (ev) {
        var i = ev.points && ev.points[0] ? ev.points[0].customdata : -1;
        if (typeof i === "number" && i >= 0) openRun(i);
      });
      return div;
    })];
  }

  function lazyRuns() {
    var boxes = document.querySelectorAll("details.run > .plots");
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (!e.isIntersecting) return;
        var box = e.target, details = box.parentNode;
        if (!details.open) return;
        io.unobserve(box);
        drawRun(+box.getAttribute("data-run"), box);
      });
    }, { rootMargin: "300px 0px" });
    boxes.forEach(function (b) { io.observe(b); });
  }

  function filters() {
    var input = document.getElementById("run-filter"), only = document.getElementById("run-problems");
    var count = document.getElementById("run-count"), runs = document.querySelectorAll("details.run");
    function apply() {
      var q = input.value.toLowerCase(), shown = 0;
      runs.forEach(function (d) {
        var r = D.runs[+d.getAttribute("data-run")], w = d.getAttribute("data-worst");
        var ok = (!q || r.name.toLowerCase().indexOf(q) >= 0) && (!only.checked || w === "error" || w === "warning");
        d.classList.toggle("hidden", !ok);
        if (ok) shown += 1;
      });
      count.textContent = shown + " of " + runs.length + " runs shown";
    }
    input.addEventListener("input", apply);
    only.addEventListener("change", apply);
    apply();
  }

  function sortable() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      var ths = table.querySelectorAll("thead th");
      ths.forEach(function (th, col) {
        th.addEventListener("click", function () {
          var asc = !th.classList.contains("asc");
          ths.forEach(function (h) { h.classList.remove("asc", "desc"); });
          th.classList.add(asc ? "asc" : "desc");
          var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) {
            var ca = a.cells[col], cb = b.cells[col];
            var va = ca.getAttribute("data-v"), vb = cb.getAttribute("data-v"), r;
            if (va !== null && vb !== null) r = parseFloat(va) - parseFloat(vb);
            else if (va !== null || vb !== null) r = va !== null ? -1 : 1;
            else r = ca.textContent.localeCompare(cb.textContent);
            return asc ? r : -r;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
  }

  function follow() {  /* a link to #run-N opens that run */
    var m = /^#run-(\d+)$/.exec(location.hash);
    if (m) openRun(+m[1]);
  }

  filters();
  sortable();
  window.addEventListener("hashchange", follow);
  follow();
  var first = overlays().concat(compare(), sweep());
  Promise.all(first).then(function () {
    window.__warmcheckReadyAt = performance.now();
    window.__warmcheckReady = true;
    document.body.setAttribute("data-ready", "1");
    lazyRuns();
  }, function (err) {
    window.__warmcheckError = String(err);
    throw err;
  });
})();
