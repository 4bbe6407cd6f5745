// Troupe console: the Go test page's requests, plus logs, mail inbox and health views.
// No framework. Data from the network is only ever inserted with textContent.
(function () {
  "use strict";
  const broker = document.body.dataset.broker;
  const catcher = document.body.dataset.catcher;
  const $ = (id) => document.getElementById(id);
  // The token from the last sign-in (Test Auth), kept for this tab: every read sends it.
  let token = sessionStorage.getItem("troupe.token");

  // A read answered 401: the broker wants a signed-in reader (READ_AUTH).
  function signInPrompt(res) {
    if (res.status !== 401) return "";
    token = null;
    sessionStorage.removeItem("troupe.token");
    const state = $("token-state");
    if (state) state.textContent = "not signed in: sign in with Test Auth on the Console to read";
    return " (sign in with Test Auth on the Console first)";
  }

  // ---- helpers -----------------------------------------------------------------------------

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function show(node, value) {
    node.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 4);
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  }

  function when(value) {
    if (!value) return "";
    const d = new Date(value);
    return isNaN(d) ? String(value) : d.toLocaleString();
  }

  async function readJson(res) {
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch (_) {
      return { error: !res.ok, message: text || res.statusText };
    }
  }

  // ---- views ---------------------------------------------------------------------------------

  const views = ["console", "logs", "trace", "mail", "dead", "health"];
  let healthTimer = null;

  function route() {
    // "#trace/<id>": a view and its argument.
    const [view, ...rest] = location.hash.slice(1).split("/");
    const name = views.includes(view) ? view : "console";
    for (const v of views) $("view-" + v).hidden = v !== name;
    for (const a of document.querySelectorAll("#nav a")) {
      a.classList.toggle("on", a.dataset.view === name);
    }
    document.body.dataset.view = name;
    clearInterval(healthTimer);
    healthTimer = null;
    window.TroupeCharts.stop();
    if (name !== "logs") follow(false);
    if (name === "logs") searchLogs();
    if (name === "trace") window.TroupeTrace.show(rest.join("/"));
    if (name === "mail") loadInbox();
    if (name === "dead") loadDead();
    if (name === "health") {
      loadHealth();
      healthTimer = setInterval(loadHealth, 5000);
      window.TroupeCharts.start();
    }
  }

  // ---- console -------------------------------------------------------------------------------

  const output = $("output");
  const sent = $("payload");
  const received = $("received");

  /// A link to the trace view: the trace id when known, else the request id.
  function traceLink(traceId, requestId, text) {
    const a = el("a", text, "small trace-link");
    a.href = window.TroupeTrace.href(traceId, requestId);
    a.title = traceId ? "Trace " + traceId : "Traces of request " + requestId;
    return a;
  }

  function line(text, requestId, traceId) {
    const p = el("div", text);
    if (requestId) {
      p.appendChild(document.createTextNode(" "));
      const a = el("a", "logs of this request", "small");
      a.href = "#logs";
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        followRequest(requestId);
      });
      p.appendChild(a);
    }
    if (traceId || requestId) {
      p.appendChild(document.createTextNode(" "));
      p.appendChild(traceLink(traceId, requestId, "trace"));
    }
    const placeholder = output.querySelector(".muted");
    if (placeholder) placeholder.remove();
    output.prepend(p);
  }

  async function send(path, payload) {
    show(sent, payload === undefined ? "(empty post request)" : payload);
    try {
      const res = await fetch(broker + path, {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json" }),
        body: payload === undefined ? "" : JSON.stringify(payload),
      });
      const data = await readJson(res);
      show(received, data);
      if (data.token && data.token.access_token) {
        token = data.token.access_token;
        sessionStorage.setItem("troupe.token", token);
        $("token-state").textContent = "signed in" + (data.data && data.data.email ? " as " + data.data.email : "");
      }
      const prefix = data.error ? "Error: " : "Response from broker service: ";
      line(prefix + data.message, res.headers.get("x-request-id"), window.TroupeTrace.traceIdOf(res.headers.get("traceresponse")));
    } catch (err) {
      show(received, String(err));
      line("Error: " + err);
    }
  }

  $("brokerBtn").addEventListener("click", () => send("/"));
  $("authBrokerBtn").addEventListener("click", () =>
    send("/handle", { action: "auth", auth: { email: "admin@example.com", password: "verysecret" } })
  );
  $("logBtn").addEventListener("click", () =>
    send("/handle", { action: "log", log: { name: "event", data: "Some kind of data" } })
  );
  $("mailBtn").addEventListener("click", () =>
    send("/handle", {
      action: "mail",
      mail: { from: "me@example.com", to: "you@there.com", subject: "Test email", message: "Hello world!" },
    })
  );
  $("logGBtn").addEventListener("click", () =>
    send("/log-grpc", { action: "log", log: { name: "event", data: "Some kind of gRPC data" } })
  );
  $("eventForm").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send("/handle", {
      action: "event",
      event: { name: $("eventName").value, data: $("eventData").value, level: $("eventLevel").value },
    });
  });

  // ---- logs ----------------------------------------------------------------------------------

  const filters = $("logFilters");
  let nextCursor = null;

  function logQuery(cursor) {
    const q = new URLSearchParams();
    for (const input of filters.elements) {
      if (!input.name || !input.value) continue;
      let value = input.value.trim();
      if (input.type === "datetime-local") {
        const d = new Date(value);
        if (isNaN(d)) continue;
        value = d.toISOString();
      }
      if (value) q.set(input.name, value);
    }
    if (cursor) q.set("cursor", cursor);
    return q;
  }

  let generation = 0;

  async function searchLogs(more) {
    const status = $("logStatus");
    const rows = $("logRows");
    const mine = more ? generation : ++generation;
    status.textContent = "Loading...";
    try {
      const res = await fetch(broker + "/logs?" + logQuery(more ? nextCursor : null), { headers: authHeaders() });
      const body = await readJson(res);
      if (mine !== generation) return; // a newer search replaced this one
      if (!more) rows.replaceChildren();
      if (!res.ok || body.error) {
        const hint = signInPrompt(res);
        status.textContent = "Error: " + body.message + hint;
        return;
      }
      const data = body.data || {};
      const entries = data.entries || [];
      for (const e of entries) rows.appendChild(logRow(e));
      nextCursor = data.next_cursor || null;
      $("logMore").hidden = !nextCursor;
      status.textContent = rows.children.length
        ? rows.children.length + " entries" + (nextCursor ? ", more available" : "")
        : "No entries match.";
    } catch (err) {
      status.textContent = "Error: " + err;
    }
  }

  function logRow(e) {
    const tr = el("tr");
    tr.className = "level-" + String(e.level || "").toLowerCase();
    tr.dataset.id = e.id || "";
    tr.appendChild(el("td", when(e.created_at), "nowrap"));
    tr.appendChild(el("td", e.level));
    tr.appendChild(el("td", e.service));
    const name = el("td");
    const open = el("a", e.name || "(unnamed)");
    open.href = "#logs";
    open.addEventListener("click", (ev) => {
      ev.preventDefault();
      openLog(e.id);
    });
    name.appendChild(open);
    tr.appendChild(name);
    tr.appendChild(el("td", e.data, "data"));
    const req = el("td");
    if (e.request_id) {
      const a = el("a", String(e.request_id).slice(0, 8), "mono");
      a.href = "#logs";
      a.title = "Follow request " + e.request_id + " across services";
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        followRequest(e.request_id);
      });
      req.appendChild(a);
    }
    if (e.trace_id || e.request_id) {
      req.appendChild(document.createTextNode(" "));
      req.appendChild(traceLink(e.trace_id, e.request_id, "trace"));
    }
    tr.appendChild(req);
    return tr;
  }

  async function openLog(id) {
    const detail = $("logDetail");
    detail.hidden = false;
    $("logDetailTitle").hidden = false;
    try {
      const res = await fetch(broker + "/logs/" + encodeURIComponent(id), { headers: authHeaders() });
      const body = await readJson(res);
      const hint = signInPrompt(res);
      show(detail, hint ? "Error: " + body.message + hint : body.data || body);
    } catch (err) {
      show(detail, "Error: " + err);
    }
    detail.scrollIntoView({ block: "nearest" });
  }

  function followRequest(id) {
    for (const input of filters.elements) if (input.name && input.name !== "limit") input.value = "";
    $("f-request").value = id;
    if (location.hash === "#logs") searchLogs();
    else location.hash = "#logs";
  }

  // Following: new entries from the broker's GET /logs/stream (server-sent events), with the
  // same filters. EventSource reconnects by itself (after a logger restart), sending the last
  // entry's id so nothing is missed; Pause closes the stream, and resuming asks for what came
  // after the last entry shown.
  let follower = null;
  let lastSeen = null;

  function followState(state, text) {
    const s = $("followState");
    s.dataset.state = state;
    s.textContent = text;
  }

  function follow(on, resume) {
    if (follower) follower.close();
    follower = null;
    const button = $("logFollow");
    button.classList.toggle("on", on);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Pause" : lastSeen ? "Resume" : "Follow";
    if (!on) {
      followState("off", lastSeen ? "Paused." : "");
      return;
    }
    const q = logQuery(null);
    q.delete("limit");
    if (resume && lastSeen) q.set("after", lastSeen);
    // EventSource sends no headers: the stream takes the token as access_token (RFC 6750).
    if (token) q.set("access_token", token);
    const source = new EventSource(broker + "/logs/stream?" + q);
    follower = source;
    followState("connecting", "Connecting...");
    source.onopen = () => {
      if (follower === source) followState("live", "Following: new entries appear at the top.");
    };
    source.onerror = () => {
      if (follower !== source) return;
      if (source.readyState === EventSource.CLOSED) followState("closed", "Disconnected (the broker refused the stream).");
      else followState("reconnecting", "Reconnecting...");
    };
    source.onmessage = (ev) => {
      if (follower !== source) return;
      let entry;
      try {
        entry = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      lastSeen = ev.lastEventId || lastSeen;
      const rows = $("logRows");
      if (entry.id && rows.querySelector('tr[data-id="' + CSS.escape(entry.id) + '"]')) return;
      const tr = logRow(entry);
      tr.classList.add("fresh");
      rows.prepend(tr);
      $("logStatus").textContent = rows.children.length + " entries";
    };
  }

  $("logFollow").addEventListener("click", () => {
    if (follower) follow(false);
    else follow(true, true);
  });

  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchLogs();
    // New filters: follow what matches them from now on.
    if (follower) {
      lastSeen = null;
      follow(true);
    }
  });
  filters.addEventListener("reset", () =>
    setTimeout(() => {
      searchLogs();
      if (follower) {
        lastSeen = null;
        follow(true);
      }
    }, 0)
  );
  $("logMore").addEventListener("click", () => searchLogs(true));

  // ---- mail ----------------------------------------------------------------------------------

  let openMessage = null;

  async function catcherCall(path, method) {
    const res = await fetch(catcher + path, { method: method || "GET" });
    const body = await readJson(res);
    if (!res.ok || body.error) throw new Error(body.message || res.statusText);
    return body.data;
  }

  async function loadInbox() {
    const status = $("mailStatus");
    const list = $("mailList");
    status.textContent = "Loading...";
    try {
      const messages = (await catcherCall("/api/messages")) || [];
      list.replaceChildren();
      for (const m of messages) {
        const li = el("li");
        const a = el("a");
        a.href = "#mail";
        a.dataset.id = m.id;
        a.appendChild(el("strong", m.subject || "(no subject)"));
        a.appendChild(el("span", " from " + m.from + " to " + (m.to || []).join(", "), "muted"));
        a.appendChild(el("span", " · " + when(m.received_at), "muted small"));
        a.addEventListener("click", (ev) => {
          ev.preventDefault();
          openMail(m.id);
        });
        li.appendChild(a);
        list.appendChild(li);
      }
      status.textContent = messages.length ? messages.length + (messages.length === 1 ? " message" : " messages") : "The inbox is empty.";
    } catch (err) {
      status.textContent = "Error: " + err.message + " (mail catcher at " + catcher + ")";
    }
  }

  function showPart(part) {
    for (const b of document.querySelectorAll(".tabs [data-part]")) b.classList.toggle("on", b.dataset.part === part);
    $("mailHtml").hidden = part !== "html";
    $("mailText").hidden = part !== "text";
    $("mailHeadersBox").hidden = part !== "headers";
  }

  async function openMail(id) {
    try {
      const m = await catcherCall("/api/messages/" + encodeURIComponent(id));
      openMessage = id;
      $("mailMessage").hidden = false;
      $("mailSubject").textContent = m.subject || "(no subject)";
      $("mailFrom").textContent = m.from || "";
      $("mailTo").textContent = Array.isArray(m.to) ? m.to.join(", ") : m.to || "";
      $("mailDate").textContent = when(m.received_at);
      $("mailText").textContent = m.text || "(no plain-text part)";
      const headers = $("mailHeaders");
      headers.replaceChildren();
      for (const [name, value] of m.headers || []) {
        const tr = el("tr");
        tr.appendChild(el("th", name));
        tr.appendChild(el("td", value));
        headers.appendChild(tr);
      }
      const base = catcher + "/api/messages/" + encodeURIComponent(id);
      $("mailHtml").src = m.html ? base + "/html" : "about:blank";
      $("mailRaw").href = base + "/raw";
      showPart(m.html ? "html" : "text");
    } catch (err) {
      $("mailStatus").textContent = "Error: " + err.message;
    }
  }

  for (const b of document.querySelectorAll(".tabs [data-part]")) {
    b.addEventListener("click", () => showPart(b.dataset.part));
  }
  $("mailRefresh").addEventListener("click", loadInbox);
  $("mailDelete").addEventListener("click", async () => {
    if (!openMessage) return;
    try {
      await catcherCall("/api/messages/" + encodeURIComponent(openMessage), "DELETE");
    } catch (err) {
      $("mailStatus").textContent = "Error: " + err.message;
    }
    openMessage = null;
    $("mailMessage").hidden = true;
    loadInbox();
  });
  $("mailDeleteAll").addEventListener("click", async () => {
    try {
      await catcherCall("/api/messages", "DELETE");
    } catch (err) {
      $("mailStatus").textContent = "Error: " + err.message;
    }
    openMessage = null;
    $("mailMessage").hidden = true;
    loadInbox();
  });

  // ---- dead letters ------------------------------------------------------------------------
  // The broker's GET /dead-letters (the in-process bus's, or the listener's at LISTENER_URL);
  // Replay is POST /dead-letters/replay, with {"seq": N} for one.

  async function brokerCall(path, method, body) {
    const res = await fetch(broker + path, {
      method: method || "GET",
      headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await readJson(res);
    if (!res.ok || data.error) throw new Error(data.message || res.statusText);
    return data;
  }

  async function loadDead(note) {
    const status = $("deadStatus");
    const rows = $("deadRows");
    status.textContent = "Loading...";
    try {
      const letters = (await brokerCall("/dead-letters?limit=500")).data || [];
      rows.replaceChildren();
      for (const d of letters) rows.appendChild(deadRow(d));
      $("deadReplayAll").disabled = !letters.length;
      const count = letters.length ? letters.length + (letters.length === 1 ? " dead letter" : " dead letters") : "No dead letters.";
      status.textContent = (note ? note + " " : "") + count;
    } catch (err) {
      rows.replaceChildren();
      status.textContent = (note ? note + " " : "") + "Error: " + err.message;
    }
  }

  function deadRow(d) {
    const e = d.event || {};
    const tr = el("tr");
    tr.dataset.seq = d.seq;
    tr.appendChild(el("td", d.seq, "mono"));
    tr.appendChild(el("td", when(d.dead_at), "nowrap"));
    tr.appendChild(el("td", e.name));
    tr.appendChild(el("td", e.level));
    tr.appendChild(el("td", e.data, "data"));
    tr.appendChild(el("td", d.reason, "data warn"));
    const act = el("td");
    const button = el("button", "Replay", "replay");
    button.type = "button";
    button.addEventListener("click", () => replayDead(d.seq));
    act.appendChild(button);
    tr.appendChild(act);
    return tr;
  }

  async function replayDead(seq) {
    try {
      const reply = await brokerCall("/dead-letters/replay", "POST", seq === undefined ? {} : { seq: seq });
      await loadDead(reply.message + ".");
    } catch (err) {
      $("deadStatus").textContent = "Error: " + err.message;
    }
  }

  $("deadRefresh").addEventListener("click", () => loadDead());
  $("deadReplayAll").addEventListener("click", () => replayDead());

  // ---- health --------------------------------------------------------------------------------

  async function loadHealth() {
    const cards = $("healthCards");
    try {
      const res = await fetch(broker + "/status", { headers: authHeaders() });
      const body = await readJson(res);
      if (!res.ok || body.error) throw new Error(body.message + signInPrompt(res));
      const services = (body.data && body.data.services) || {};
      cards.replaceChildren();
      for (const [name, s] of Object.entries(services)) cards.appendChild(healthCard(name, s));
      $("healthUpdated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (err) {
      cards.replaceChildren(healthCard("broker", { ready: false, error: String(err.message || err) }));
      $("healthUpdated").textContent = "Broker unreachable at " + new Date().toLocaleTimeString() + ".";
    }
  }

  function healthCard(name, s) {
    const card = el("div", null, "card " + (s.ready ? "ready" : "down"));
    card.dataset.service = name;
    const h = el("h3", name);
    h.appendChild(el("span", s.ready ? "ready" : "not ready", "badge"));
    card.appendChild(h);
    if (s.error) card.appendChild(el("p", s.error, "muted"));
    const backends = Object.entries(s.backends || {});
    if (!backends.length) card.appendChild(el("p", "no backends", "muted small"));
    for (const [bname, b] of backends) {
      const p = el("p", null, "backend");
      p.appendChild(el("span", bname, "mono"));
      p.appendChild(el("span", " " + (b.state || "unknown"), b.state === "ready" ? "ok" : "warn"));
      const extra = [];
      if (b.since) extra.push("since " + when(b.since));
      if (b.failed_attempts) extra.push(b.failed_attempts + " failed attempts");
      if (extra.length) p.appendChild(el("span", " · " + extra.join(", "), "muted small"));
      card.appendChild(p);
      // A misconfiguration says what to fix.
      if (b.error) card.appendChild(el("p", b.error, "warn small"));
    }
    return card;
  }

  window.TroupeTrace.setup({ headers: () => authHeaders(), readJson });
  window.TroupeCharts.setup({ broker, headers: () => authHeaders() });
  window.addEventListener("hashchange", route);
  route();
})();
