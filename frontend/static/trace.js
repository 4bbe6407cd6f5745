// Troupe console: the Trace view. One request drawn as a waterfall across the services it
// reached (the broker's GET /traces/{id}, which merges every service's spans), a list of recent
// traces (GET /traces?limit=), and a search by trace id or request id (GET /traces?request_id=).
// Drawn with positioned elements (CSSOM only: the page's CSP forbids inline style attributes);
// data from the network is only ever inserted with textContent.
// console.js owns the routing: it calls TroupeTrace.show(arg) for #trace and #trace/<id>.
(function () {
  "use strict";
  const broker = document.body.dataset.broker;
  const $ = (id) => document.getElementById(id);
  const TRACE_ID = /^[0-9a-f]{32}$/;
  // How long a trace opened from a fresh reply may take to be recorded by every service.
  const SETTLE_MS = 4000;
  let headers = () => ({});
  // console.js's reader of an envelope (or of a body that is not one), given by setup().
  let readJson = async (res) => res.json();
  let generation = 0;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function ms(value) {
    const v = Number(value) || 0;
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 100) return v.toFixed(0) + " ms";
    if (v >= 10) return v.toFixed(1) + " ms";
    return v.toFixed(2) + " ms";
  }

  async function get(path) {
    const res = await fetch(broker + path, { headers: headers() });
    const body = await readJson(res);
    return { status: res.status, ok: res.ok && !body.error, body: body };
  }

  /// The trace id of a `traceresponse` (or `traceparent`) header value, or null.
  function traceIdOf(header) {
    const parts = String(header || "").trim().split("-");
    return parts.length >= 4 && TRACE_ID.test(parts[1]) && !/^0+$/.test(parts[1]) ? parts[1] : null;
  }

  /// The waterfall's rows: spans depth-first by parent (children after their parent, siblings
  /// by start), each with its depth and its bar as fractions of the whole trace. A span whose
  /// parent is not among them (not recorded, or from a service that did not answer) is a root.
  function layout(spans) {
    const list = (spans || []).slice().sort((a, b) => a.start_unix_ms - b.start_unix_ms);
    if (!list.length) return { start: 0, total: 0, rows: [] };
    const ids = new Set(list.map((s) => s.span_id));
    const children = new Map();
    const roots = [];
    for (const s of list) {
      if (s.parent_span_id && ids.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      } else {
        roots.push(s);
      }
    }
    const start = list[0].start_unix_ms;
    const end = Math.max(...list.map((s) => s.start_unix_ms + Math.max(0, s.duration_ms)));
    const total = Math.max(end - start, 0.001);
    const rows = [];
    const seen = new Set();
    const visit = (s, depth) => {
      if (seen.has(s.span_id)) return; // a cycle in bad data: each span once
      seen.add(s.span_id);
      const offset = s.start_unix_ms - start;
      const duration = Math.max(0, s.duration_ms);
      rows.push({ span: s, depth: depth, offset: offset, duration: duration, left: offset / total, width: duration / total });
      for (const c of children.get(s.span_id) || []) visit(c, depth + 1);
    };
    for (const r of roots) visit(r, 0);
    for (const s of list) visit(s, 0);
    return { start: start, total: end - start, rows: rows };
  }

  // ---- drawing -------------------------------------------------------------------------------

  const SERVICES = ["broker", "auth", "logger", "listener", "mailer", "catcher", "frontend"];

  function serviceClass(service) {
    return "svc svc-" + (SERVICES.includes(service) ? service : "other");
  }

  function status(text, state) {
    const s = $("traceStatus");
    s.textContent = text;
    s.dataset.state = state || "";
  }

  function draw(trace) {
    const box = $("traceWaterfall");
    const { total, rows } = layout(trace.spans);
    const root = rows[0] ? rows[0].span : null;
    box.replaceChildren();
    box.hidden = false;
    $("traceList").hidden = true;
    $("traceDetail").hidden = true;

    const head = el("div", null, "trace-head");
    head.appendChild(el("h2", root ? root.name : "trace"));
    const facts = el("p", null, "muted small");
    const services = [...new Set(rows.map((r) => r.span.service))];
    const errors = rows.filter((r) => r.span.status === "error").length;
    facts.appendChild(el("span", "trace "));
    facts.appendChild(el("code", trace.trace_id, "trace-id"));
    facts.appendChild(el("span", " · " + ms(total) + " · " + rows.length + (rows.length === 1 ? " span" : " spans")));
    facts.appendChild(el("span", " · " + services.join(" → ")));
    if (root && root.attributes && root.attributes.request_id) {
      facts.appendChild(el("span", " · request "));
      facts.appendChild(el("code", root.attributes.request_id, "request-id"));
    }
    if (errors) facts.appendChild(el("span", " · " + errors + (errors === 1 ? " error" : " errors"), "warn"));
    head.appendChild(facts);
    if (trace.missing && trace.missing.length) {
      head.appendChild(el("p", "No answer from " + trace.missing.join(", ") + ": their spans are missing.", "warn small missing"));
    }
    box.appendChild(head);

    const table = el("div", null, "waterfall");
    table.setAttribute("role", "table");
    const axis = el("div", null, "wf-row wf-axis");
    axis.appendChild(el("div", "span", "wf-name muted small"));
    axis.appendChild(el("div", "service", "wf-service muted small"));
    const ticks = el("div", null, "wf-track");
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const t = el("span", ms(total * f), "wf-tick small muted");
      t.style.left = f * 100 + "%";
      if (f === 1) t.classList.add("last");
      ticks.appendChild(t);
    }
    axis.appendChild(ticks);
    axis.appendChild(el("div", "duration", "wf-time muted small"));
    table.appendChild(axis);

    for (const r of rows) table.appendChild(spanRow(r));
    box.appendChild(table);
    box.appendChild(el("p", "Click a span for its attributes.", "muted small"));
  }

  function spanRow(r) {
    const s = r.span;
    const row = el("div", null, "wf-row span-row" + (s.status === "error" ? " error" : ""));
    row.setAttribute("role", "row");
    row.tabIndex = 0;
    row.dataset.spanId = s.span_id;
    row.dataset.service = s.service;
    row.dataset.depth = r.depth;
    const name = el("div", null, "wf-name");
    name.style.paddingLeft = r.depth * 1.1 + "rem";
    name.appendChild(el("span", s.name, "span-name"));
    if (s.kind && s.kind !== "internal") name.appendChild(el("span", " " + s.kind, "muted small"));
    if (s.status === "error") name.appendChild(el("div", s.error || "error", "span-error small"));
    row.appendChild(name);
    row.appendChild(el("div", s.service, "wf-service " + serviceClass(s.service)));
    const track = el("div", null, "wf-track");
    const bar = el("div", null, "wf-bar " + serviceClass(s.service));
    bar.style.left = Math.min(r.left, 1) * 100 + "%";
    bar.style.width = Math.max(Math.min(r.width, 1 - Math.min(r.left, 1)) * 100, 0.3) + "%";
    track.appendChild(bar);
    row.appendChild(track);
    row.appendChild(el("div", ms(r.duration), "wf-time mono"));
    row.title = s.name + " (" + s.service + ")\nstarts at +" + ms(r.offset) + ", takes " + ms(r.duration) + attributeText(s);
    const open = () => detail(s, r);
    row.addEventListener("click", open);
    row.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        open();
      }
    });
    return row;
  }

  function attributeText(s) {
    const pairs = Object.entries(s.attributes || {});
    return pairs.length ? "\n" + pairs.map(([k, v]) => k + " = " + v).join("\n") : "";
  }

  function detail(s, r) {
    for (const row of document.querySelectorAll("#traceWaterfall .span-row.on")) row.classList.remove("on");
    const row = document.querySelector('#traceWaterfall .span-row[data-span-id="' + CSS.escape(s.span_id) + '"]');
    if (row) row.classList.add("on");
    const box = $("traceDetail");
    box.replaceChildren();
    box.hidden = false;
    box.appendChild(el("h3", s.name));
    const dl = el("dl", null, "meta");
    const add = (k, v) => {
      dl.appendChild(el("dt", k));
      dl.appendChild(el("dd", v, "mono"));
    };
    add("service", s.service);
    add("kind", s.kind);
    add("status", s.status + (s.error ? ": " + s.error : ""));
    add("starts at", "+" + ms(r.offset) + " (" + new Date(s.start_unix_ms).toISOString() + ")");
    add("duration", ms(r.duration));
    add("span id", s.span_id);
    add("parent", s.parent_span_id || "(root)");
    for (const [k, v] of Object.entries(s.attributes || {})) add(k, v);
    box.appendChild(dl);
  }

  function list(summaries, title) {
    const box = $("traceList");
    $("traceWaterfall").hidden = true;
    $("traceDetail").hidden = true;
    box.hidden = false;
    $("traceListTitle").textContent = title;
    const rows = $("traceRows");
    rows.replaceChildren();
    for (const t of summaries) {
      const tr = el("tr", null, t.error ? "error" : "");
      tr.dataset.traceId = t.trace_id;
      tr.appendChild(el("td", new Date(t.start_unix_ms).toLocaleString(), "nowrap"));
      const name = el("td");
      const a = el("a", t.name || "(unnamed)");
      a.href = "#trace/" + encodeURIComponent(t.trace_id);
      name.appendChild(a);
      tr.appendChild(name);
      tr.appendChild(el("td", t.service, serviceClass(t.service)));
      tr.appendChild(el("td", ms(t.duration_ms), "mono nowrap"));
      tr.appendChild(el("td", t.spans, "mono"));
      tr.appendChild(el("td", t.error ? "error" : "ok", t.error ? "warn" : "ok"));
      tr.appendChild(el("td", t.request_id ? String(t.request_id) : "", "mono small"));
      rows.appendChild(tr);
    }
  }

  // ---- loading -------------------------------------------------------------------------------

  // What the console itself asks for while it is open (its views' reads and polls, its own
  // page and assets, CORS preflights): hidden from the recent list unless asked for.
  const OWN = /^(OPTIONS|HEAD) |^GET (UNMATCHED|\/(traces|logs|status|metrics|dead-letters|readyz|healthz|ping|static|openapi)\b)/;
  const own = (t) => t.service === "frontend" || OWN.test(t.name || "");
  const SHOWN = 50;

  // Ask the broker for `path`, every 250 ms, until `step(reply, late)`
  // says it is done, `late` once SETTLE_MS have passed; a newer view's request ends it.
  async function settle(loading, path, step) {
    const mine = ++generation;
    status(loading, "loading");
    const deadline = Date.now() + SETTLE_MS;
    try {
      for (;;) {
        const r = await get(path);
        if (mine !== generation) return;
        if (step(r, Date.now() > deadline)) return;
        await new Promise((done) => setTimeout(done, 250));
      }
    } catch (err) {
      if (mine === generation) status("Error: " + err + " (broker at " + broker + ")", "error");
    }
  }

  function recent() {
    return settle("Loading...", "/traces?limit=500", (r) => {
      if (!r.ok) {
        status("Error: " + r.body.message, "error");
        return true;
      }
      const all = r.body.data || [];
      const data = (showOwn() ? all : all.filter((t) => !own(t))).slice(0, SHOWN);
      const hidden = showOwn() ? 0 : all.filter(own).length;
      list(data, "Recent traces");
      const note = hidden ? " (" + hidden + " of the console's own requests hidden)" : "";
      status((data.length ? data.length + " recent traces, newest first." : "No traces yet: press a button on the Console.") + note, "list");
      return true;
    });
  }

  // A trace opened right after its reply may not be recorded yet (a service stores its span
  // as it ends): a 404 is retried for a moment. Open again to see spans recorded later (an
  // event consumed after the reply).
  function openTrace(id) {
    return settle("Loading trace " + id + "...", "/traces/" + encodeURIComponent(id), (r, late) => {
      if (r.ok) {
        draw(r.body.data);
        status("", "trace");
        return true;
      }
      if (r.status === 404 && !late) return false;
      $("traceWaterfall").hidden = true;
      status("Error: " + r.body.message, r.status === 404 ? "missing" : "error");
      return true;
    });
  }

  function byRequest(requestId) {
    const path = "/traces?limit=20&request_id=" + encodeURIComponent(requestId);
    return settle("Looking for request " + requestId + "...", path, (r, late) => {
      if (!r.ok) {
        status("Error: " + r.body.message, "error");
        return true;
      }
      const found = r.body.data || [];
      if (found.length === 1) {
        openTrace(found[0].trace_id);
        return true;
      }
      if (found.length > 1) {
        list(found, "Traces of request " + requestId);
        status(found.length + " traces carry this request id.", "list");
        return true;
      }
      if (!late) return false;
      $("traceWaterfall").hidden = true;
      $("traceList").hidden = true;
      status("No trace of request " + requestId + ".", "missing");
      return true;
    });
  }

  /// Show the view for the fragment's argument: "" recent traces, a trace id, or a request id.
  function show(arg) {
    const value = decodeURIComponent(arg || "").trim();
    $("traceQuery").value = value;
    if (!value) return recent();
    if (TRACE_ID.test(value.toLowerCase())) return openTrace(value.toLowerCase());
    const pasted = traceIdOf(value.toLowerCase()); // a whole traceresponse / traceparent value
    if (pasted) return openTrace(pasted);
    return byRequest(value);
  }

  $("traceSearch").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("traceQuery").value.trim();
    const hash = "#trace" + (value ? "/" + encodeURIComponent(value) : "");
    if (location.hash === hash) show(value);
    else location.hash = hash;
  });
  const showOwn = () => $("traceAll").checked;
  $("traceAll").addEventListener("change", () => {
    if (!$("traceList").hidden) recent();
  });
  $("traceRecent").addEventListener("click", () => {
    if (location.hash === "#trace") recent();
    else location.hash = "#trace";
  });

  window.TroupeTrace = {
    layout: layout,
    traceIdOf: traceIdOf,
    show: show,
    /// Where a trace link points: the trace id when known, else the request id.
    href: (traceId, requestId) => "#trace/" + encodeURIComponent(traceId || requestId),
    /// console.js hands over how to authenticate broker requests.
    setup: (options) => {
      if (options && options.headers) headers = options.headers;
      if (options && options.readJson) readJson = options.readJson;
    },
  };
})();
