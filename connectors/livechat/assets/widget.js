/* Stagegate live chat widget. Embed with
   <script src="https://GATEWAY/in/NAME/widget.js" data-channel="sales" async></script>
   Plain JavaScript, no build step. Each page load shows the open
   conversation's history; reconnects with backoff resume from the page's
   cursor; unacknowledged messages are kept and sent again with the same
   id, which the gateway stores once. */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || window.StagegateChat) return;
  var src = me.src.split(/[?#]/)[0], ds = me.dataset || {};
  var base = src.replace(/widget\.js$/, "");
  var wsURL = base.replace(/^http/, "ws") + "ws";
  var key = "sgchat:" + base;
  var st = load();
  // A new page shows the conversation from its start: the first hello of
  // the page asks for every message; later ones resume from this page's
  // cursor, so a reconnect gets exactly what the page missed.
  st.last = 0;
  var ws = null, ready = false, backoff = 500, typingAt = 0, typingTimer = null, ask = [], el = {};
  var gone = {}; // ids of the messages this page saw stored (see save)

  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(key));
      if (s && typeof s === "object") { s.outbox = s.outbox || []; return s; }
    } catch (e) {}
    return { outbox: [], ident: {} };
  }
  // save writes the state for the next page. Every tab of the site shares
  // it, so the messages other tabs queued and this one did not see stored
  // are kept (a tab closed while offline would lose them otherwise), and
  // taken into this page's outbox: sent now when online, else with its
  // next hello. The gateway stores a message id once, whoever sends it.
  function save() {
    try {
      var cur = JSON.parse(localStorage.getItem(key)), have = {}, more = [];
      st.outbox.forEach(function (m) { have[m.id] = true; });
      ((cur && cur.outbox) || []).forEach(function (m) {
        if (m && m.id && !have[m.id] && !gone[m.id]) { have[m.id] = true; more.push(m); }
      });
      st.outbox = st.outbox.concat(more);
      localStorage.setItem(key, JSON.stringify(st));
      if (ready) more.forEach(function (m) { tx({ type: "message", id: m.id, text: m.text }); });
    } catch (e) {}
  }
  function stored(id) {
    gone[id] = true;
    st.outbox = st.outbox.filter(function (o) { return o.id !== id; });
  }
  function tx(f) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(f)); }

  function h(tag, attrs, text) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) n.setAttribute(k, attrs[k]);
    if (text != null) n.textContent = text;
    return n;
  }

  function build() {
    // The root is a column aligned to the right: the Chat button stays put
    // when the panel opens above it, and the panel shrinks to fit small
    // windows (16 px margins, the button below it).
    var css = ".sgc{position:fixed;right:16px;bottom:16px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif;color:#222;display:flex;flex-direction:column;align-items:flex-end}" +
      ".sgc button{cursor:pointer;border:0;border-radius:6px;background:#2563eb;color:#fff;padding:8px 12px;font:inherit}" +
      ".sgc-p{display:none;flex-direction:column;box-sizing:border-box;width:320px;max-width:calc(100vw - 32px);height:420px;max-height:calc(100vh - 84px);background:#fff;border:1px solid #ccc;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.2);margin-bottom:8px}" +
      ".sgc.open .sgc-p{display:flex}.sgc-h{padding:8px 12px;background:#2563eb;color:#fff;border-radius:8px 8px 0 0}" +
      ".sgc-s{font-size:12px;opacity:.8}.sgc-l{flex:1;overflow-y:auto;padding:8px}" +
      ".sg-msg{margin:4px 0;padding:6px 8px;border-radius:6px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}" +
      ".sg-visitor{background:#dbeafe;margin-left:auto}.sg-agent{background:#f1f5f9}.sg-system{font-size:12px;color:#666;text-align:center;max-width:100%}" +
      ".sg-pending{opacity:.6}.sgc-f{display:flex;gap:4px;padding:8px;border-top:1px solid #eee;flex-wrap:wrap}" +
      ".sgc-f input{flex:1;min-width:0;padding:6px;border:1px solid #ccc;border-radius:6px;font:inherit}";
    var root = h("div", { "class": "sgc", id: "sg-chat" });
    root.appendChild(h("style", {}, css));
    var p = h("div", { "class": "sgc-p", id: "sg-chat-panel" });
    var hd = h("div", { "class": "sgc-h" }, ds.title || "Chat with us");
    el.title = hd;
    el.status = h("div", { "class": "sgc-s", id: "sg-chat-status" }, "connecting…");
    hd.appendChild(el.status);
    el.log = h("div", { "class": "sgc-l", id: "sg-chat-log", "aria-live": "polite" });
    el.ident = h("div", { "class": "sgc-f", id: "sg-chat-ident", style: "display:none" });
    var f = h("form", { "class": "sgc-f" });
    el.input = h("input", { id: "sg-chat-input", placeholder: "Type a message", autocomplete: "off", maxlength: "4000" });
    f.appendChild(el.input);
    f.appendChild(h("button", { id: "sg-chat-send", type: "submit" }, "Send"));
    f.onsubmit = function (e) { e.preventDefault(); var t = el.input.value; if (t.trim()) { send(t); el.input.value = ""; } };
    el.input.oninput = function () {
      var now = Date.now();
      if (ready && now - typingAt > 3000) { typingAt = now; tx({ type: "typing" }); }
    };
    p.appendChild(hd); p.appendChild(el.log); p.appendChild(el.ident); p.appendChild(f);
    var b = h("button", { id: "sg-chat-button", type: "button" }, "Chat");
    b.onclick = function () { root.classList.toggle("open"); if (root.classList.contains("open")) el.input.focus(); };
    root.appendChild(p); root.appendChild(b);
    document.body.appendChild(root);
    el.root = root;
  }

  // showAsk shows a field for each thing asked for and not yet given; a
  // field the visitor is typing in stays as it is. A field is sent when
  // the visitor leaves it or presses Enter, not only with the next message.
  function showAsk() {
    var missing = ask.filter(function (k) { return !(st.ident || {})[k]; });
    el.ident.querySelectorAll("input").forEach(function (n) { if (missing.indexOf(n.name) < 0) n.remove(); });
    el.ident.style.display = missing.length ? "flex" : "none";
    missing.forEach(function (k, i) {
      if (document.getElementById("sg-chat-" + k)) return;
      var n = h("input", { id: "sg-chat-" + k, name: k, placeholder: "Your " + k, type: k === "email" ? "email" : k === "phone" ? "tel" : "text" });
      n.onchange = identify;
      n.onkeydown = function (e) { if (e.key === "Enter") { e.preventDefault(); identify(); } };
      el.ident.insertBefore(n, el.ident.children[i] || null);
    });
  }

  function identify() {
    var f = { type: "identify" }, any = false;
    ask.forEach(function (k) {
      var i = document.getElementById("sg-chat-" + k);
      if (i && i.value.trim()) { f[k] = i.value.trim(); any = true; }
    });
    if (!any) return;
    st.ident = st.ident || {};
    for (var k in f) if (k !== "type") st.ident[k] = f[k];
    save(); tx(f); showAsk();
  }

  function render(m, pending) {
    var who = m.from || "visitor", text = m.text;
    if (who === "system") text = m.event === "accepted" ? (m.agent || "An agent") + " joined the chat" : "The chat was closed";
    var n = h("div", { "class": "sg-msg sg-" + who + (pending ? " sg-pending" : "") }, text);
    if (pending) n.setAttribute("data-id", m.id); else n.setAttribute("data-seq", m.seq);
    el.log.appendChild(n);
    el.log.scrollTop = el.log.scrollHeight;
    return n;
  }

  function add(m) {
    if (m.conversation_id !== st.conv) { st.conv = m.conversation_id; st.last = 0; }
    if (m.seq <= (st.last || 0)) return;
    st.last = m.seq;
    if (m.from === "visitor") {
      var p = el.log.querySelector('.sg-pending[data-id="' + m.id + '"]');
      if (p) p.remove();
      stored(m.id);
    }
    if (m.from === "agent") typed();
    render(m);
    save();
  }

  // typed ends "typing…": the agent's message is there, or 3 s passed.
  function typed() {
    clearTimeout(typingTimer); typingTimer = null;
    if (el.status.textContent === "typing…") el.status.textContent = ready ? "online" : "connecting…";
  }

  function send(text) {
    if (ask.length) identify();
    var m = { id: "m" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8), text: text };
    st.outbox.push(m); save();
    render(m, true);
    if (ready) tx({ type: "message", id: m.id, text: m.text });
    if (!el.root.classList.contains("open")) el.root.classList.add("open");
  }

  function flush() {
    st.outbox.forEach(function (m) { tx({ type: "message", id: m.id, text: m.text }); });
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome":
        st.token = f.visitor_token; ask = f.ask || [];
        if (f.title && !ds.title) el.title.firstChild.nodeValue = f.title;
        if (f.conversation && f.conversation.id !== st.conv) { st.conv = f.conversation.id; st.last = 0; }
        (f.messages || []).forEach(add);
        el.log.querySelectorAll(".sg-pending").forEach(function (n) { n.remove(); });
        st.outbox.forEach(function (m) { render(m, true); });
        backoff = 500; save(); ready = true; showAsk(); flush(); // flush sends what save took in, too
        el.status.textContent = "online";
        break;
      case "message": add(f); break;
      case "ack":
        stored(f.id); save();
        break;
      case "typing":
        el.status.textContent = "typing…";
        clearTimeout(typingTimer); typingTimer = setTimeout(typed, 3000);
        break;
      case "error":
        if (f.retryable && st.outbox.length) setTimeout(flush, 2000);
        else if (f.code !== "rate_limited") el.status.textContent = f.message || f.code;
        if (f.code === "bad_field") {
          var bad = String(f.message || "").split(":")[0];
          if (st.ident && bad in st.ident) delete st.ident[bad]; else st.ident = {};
          save(); showAsk();
        }
        break;
    }
  }

  function connect() {
    ready = false;
    try { ws = new WebSocket(wsURL); } catch (e) { return retry(); }
    ws.onopen = function () {
      var hello = { type: "hello", visitor_token: st.token, channel: ds.channel, page: String(location.href).slice(0, 2000) };
      ["name", "email", "phone"].forEach(function (k) { if ((st.ident || {})[k]) hello[k] = st.ident[k]; }); // given while offline, too
      if (st.conv) hello.cursor = { conversation_id: st.conv, last_seq: st.last || 0 };
      tx(hello);
    };
    ws.onmessage = function (e) { try { onFrame(JSON.parse(e.data)); } catch (err) {} };
    ws.onclose = retry;
  }

  function retry() {
    ready = false; ws = null;
    el.status.textContent = "reconnecting…";
    setTimeout(connect, backoff * (0.5 + Math.random() / 2));
    backoff = Math.min(backoff * 2, 30000);
  }

  function start() { build(); connect(); }
  window.StagegateChat = {
    open: function () { el.root.classList.add("open"); },
    send: send,
    state: function () { return JSON.parse(JSON.stringify(st)); }
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
