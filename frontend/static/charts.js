// Troupe console: the Health view's charts. The last 15 minutes of each service's request
// rate, p99 latency and error rate, and of the event pipeline's queue depth and dead
// letters, from the broker's GET /metrics/history, drawn as SVG by this script (no library,
// no inline style: the page's Content-Security-Policy allows neither). Each chart carries
// data-series, data-points and data-last, so tests and people can read what it shows.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 240, H = 92;                           // viewBox
  const M = { left: 34, right: 6, top: 17, bottom: 16 };  // plot margins
  const ORDER = ["broker", "auth", "logger", "mailer", "listener"];
  const SERIES = [
    { key: "rate", title: "Requests/s", unit: "/s", scale: 1 },
    { key: "p99_ms", title: "p99 latency", unit: "ms", scale: 1 },
    { key: "error_rate", title: "Errors (5xx)", unit: "%", scale: 100 },
  ];
  const EVENT_SERIES = [
    { key: "queue_depth", title: "Queue depth", unit: "", scale: 1 },
    { key: "dead_letters", title: "Dead letters", unit: "", scale: 1 },
  ];
  const REFRESH_MS = 3000;

  let opts = { broker: "", headers: () => ({}) };
  let timer = null;

  function svg(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A round number at or above v, for the top of the y axis.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 100) return Math.round(v).toString();
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2).replace(/\.?0+$/, "") || "0";
  }

  // One chart: `points` are {t, v} with v null where nothing was measured (a gap).
  function chart(id, title, unit, points, now, windowMs) {
    const values = points.map((p) => p.v).filter((v) => v !== null && v !== undefined);
    const last = values.length ? values[values.length - 1] : null;
    const top = niceMax(Math.max(0, ...values));
    const x = (t) => M.left + ((t - (now - windowMs)) / windowMs) * (W - M.left - M.right);
    const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom);

    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": `${title}: last value ${fmt(last)}${unit}`,
      "data-series": id, "data-points": values.length, "data-last": last === null ? "" : last,
    });
    root.appendChild(svg("text", { x: M.left, y: 13, class: "chart-title" }, title));
    root.appendChild(svg("text", { x: W - M.right, y: 13, class: "chart-last", "text-anchor": "end" },
      fmt(last) + (last === null ? "" : unit)));
    // Grid and y labels: 0, half, top.
    for (const f of [0, 0.5, 1]) {
      const gy = y(top * f);
      root.appendChild(svg("line", { x1: M.left, x2: W - M.right, y1: gy, y2: gy, class: f ? "grid" : "axis" }));
      root.appendChild(svg("text", { x: M.left - 4, y: gy + 3, class: "tick", "text-anchor": "end" }, fmt(top * f)));
    }
    // x labels: minutes ago.
    for (const ago of [15, 10, 5, 0]) {
      const gx = x(now - ago * 60000);
      root.appendChild(svg("text", { x: gx, y: H - 5, class: "tick", "text-anchor": ago === 15 ? "start" : ago ? "middle" : "end" },
        ago ? `-${ago}m` : "now"));
    }
    // The line, broken where a value is missing.
    let run = [];
    const flush = () => {
      if (run.length === 1) root.appendChild(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, class: "dot" }));
      if (run.length > 1) root.appendChild(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), class: "line" }));
      run = [];
    };
    for (const p of points) {
      if (p.t < now - windowMs) continue;
      if (p.v === null || p.v === undefined) { flush(); continue; }
      run.push([x(p.t).toFixed(1), y(p.v).toFixed(1)]);
    }
    flush();
    return root;
  }

  function group(name, note, charts) {
    const box = document.createElement("div");
    box.className = "chart-group";
    box.dataset.chartService = name;
    const h = document.createElement("h3");
    h.textContent = name;
    if (note) {
      const span = document.createElement("span");
      span.className = "warn small";
      span.textContent = " " + note;
      h.appendChild(span);
    }
    box.appendChild(h);
    for (const c of charts) box.appendChild(c);
    return box;
  }

  function render(data) {
    const box = document.getElementById("charts");
    if (!box) return;
    const now = Date.now();
    const windowMs = data.window_ms || 900000;
    const services = data.services || {};
    const names = Object.keys(services).sort((a, b) => {
      const ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    const groups = names.map((name) => {
      const s = services[name];
      const charts = SERIES.map((d) => chart(`${name}.${d.key}`, d.title, d.unit,
        (s.points || []).map((p) => ({ t: p.t, v: p[d.key] === null || p[d.key] === undefined ? null : p[d.key] * d.scale })),
        now, windowMs));
      return group(name, s.up ? "" : "not answering" + (s.error ? ": " + s.error : ""), charts);
    });
    const events = (data.events && data.events.points) || [];
    if (events.length) {
      groups.push(group("events", "", EVENT_SERIES.map((d) => chart(`events.${d.key}`, d.title, d.unit,
        events.map((p) => ({ t: p.t, v: p[d.key] === null || p[d.key] === undefined ? null : p[d.key] * d.scale })),
        now, windowMs))));
    }
    box.replaceChildren(...groups);
    const stamp = document.getElementById("chartsUpdated");
    if (stamp) stamp.textContent = "Sampled every " + Math.round((data.interval_ms || 5000) / 1000) + " s; updated " + new Date().toLocaleTimeString() + ".";
  }

  async function load() {
    try {
      const res = await fetch(opts.broker + "/metrics/history", { headers: opts.headers() });
      const body = await res.json();
      if (!res.ok || body.error) throw new Error(body.message || res.statusText);
      render(body.data || {});
    } catch (err) {
      const stamp = document.getElementById("chartsUpdated");
      if (stamp) stamp.textContent = "Metrics history unavailable: " + (err.message || err);
    }
  }

  window.TroupeCharts = {
    setup(o) { opts = Object.assign(opts, o); },
    start() {
      this.stop();
      load();
      timer = setInterval(load, REFRESH_MS);
    },
    stop() {
      clearInterval(timer);
      timer = null;
    },
  };
})();
