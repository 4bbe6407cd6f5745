// Troupe console: sends the Go test page's requests to the broker and shows them.
(function () {
  "use strict";
  const broker = document.body.dataset.broker;
  const output = document.getElementById("output");
  const sent = document.getElementById("payload");
  const received = document.getElementById("received");
  let token = null;

  function show(el, value) {
    el.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 4);
  }

  function line(html) {
    const p = document.createElement("div");
    p.textContent = html;
    output.prepend(p);
  }

  async function send(path, payload) {
    show(sent, payload === undefined ? "(empty post request)" : payload);
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const res = await fetch(broker + path, {
        method: "POST",
        headers,
        body: payload === undefined ? "" : JSON.stringify(payload),
      });
      const data = await res.json();
      show(received, data);
      if (data.token && data.token.access_token) token = data.token.access_token;
      line((data.error ? "Error: " : "Response from broker service: ") + data.message);
    } catch (err) {
      line("Error: " + err);
    }
  }

  document.getElementById("brokerBtn").addEventListener("click", () => send("/"));
  document.getElementById("authBrokerBtn").addEventListener("click", () =>
    send("/handle", { action: "auth", auth: { email: "admin@example.com", password: "verysecret" } })
  );
})();
