// Stagegate board: plain JavaScript, no framework, no build step.
//
// The API token lives in sessionStorage (this tab only) and goes to the
// gateway in the Authorization header of every request — also of the live
// stream, which is read with fetch() because EventSource cannot send
// headers. It is never put in a URL.
//
// Every text that comes from the gateway (names, event attributes, raw
// input) is inserted with textContent, never as HTML.
(function () {
  "use strict";

  var API = "/api/v1";
  var TOKEN_KEY = "stagegate.token";
  var ACTOR_KEY = "stagegate.actor";

  var state = {
    page: "board",
    pipeline: "",
    board: null,        // last GET /api/v1/board
    stages: {},         // item id -> stage, as last rendered
    filterResp: "",
    filterText: "",
    drawerItem: "",
    drawerReturn: null, // element focused before the drawer opened
    open: {},           // drawer: event ids whose explanation is shown
    live: false,
    refreshTimer: 0,
    health: null        // previous metrics sample, for rates
  };

  // ---------- small helpers ----------

  function $(id) { return document.getElementById(id); }

  // h builds an element: h("div", {class: "x", onclick: f}, child, "text", …).
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else el.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  var toastTimer = 0;
  function toast(msg, bad) {
    var t = $("toast");
    t.textContent = msg;
    t.className = "toast show" + (bad ? " bad" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.className = "toast"; }, 4000);
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function actor() { return sessionStorage.getItem(ACTOR_KEY) || ""; }

  function ago(iso) {
    if (!iso) return "";
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return Math.floor(s) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function when(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }

  // api calls the REST API with the token; it resolves to the decoded JSON
  // and rejects with an Error carrying the gateway's message and status.
  function api(method, path, body) {
    var opts = { method: method, headers: { "Authorization": "Bearer " + token() } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path.charAt(0) === "/" ? path : API + "/" + path, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (r.status === 401) { signOut("The token was refused. Sign in again."); }
        if (!r.ok) {
          var msg = data && data.error ? data.error.message : r.status + " " + r.statusText;
          var err = new Error(msg);
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }
  function enc(s) { return encodeURIComponent(s); }

  // ---------- icons ----------

  var ICONS = {
    email: "M2 4h20v16H2z M2 4l10 8 10-8",
    call: "M5 3h4l2 5-3 2a11 11 0 0 0 6 6l2-3 5 2v4a2 2 0 0 1-2 2A18 18 0 0 1 3 5a2 2 0 0 1 2-2z",
    chat: "M3 4h18v12H8l-5 4z",
    form: "M5 2h14v20H5z M8 7h8 M8 11h8 M8 15h5",
    webhook: "M12 3a4 4 0 0 1 2 7.5L17 16 M7 20a4 4 0 1 1 1-7.9L11 7 M20 17a4 4 0 1 1-7 2.5H7",
    site: "M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20z M2 12h20 M12 2c3 3 3 17 0 20 M12 2c-3 3-3 17 0 20",
    crm: "M3 7h18v13H3z M8 7V4h8v3 M3 12h18",
    item: "M4 4h16v16H4z M8 12l3 3 5-6",
    hand: "M8 13V5a1.5 1.5 0 0 1 3 0v6 M11 11V3.5a1.5 1.5 0 0 1 3 0V11 M14 11V5a1.5 1.5 0 0 1 3 0v8c0 5-3 8-7 8s-6-3-7-6l-1-3a1.5 1.5 0 0 1 3-1l1 2"
  };
  function family(type) {
    if (!type) return "hand";
    var f = type.split(".")[0];
    if (f === "form") return "form";
    return ICONS[f] ? f : "crm";
  }
  function icon(type, label) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", ICONS[family(type)]);
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "2");
    p.setAttribute("stroke-linejoin", "round");
    p.setAttribute("stroke-linecap", "round");
    svg.appendChild(p);
    return h("span", { class: "icon", title: label, role: "img", "aria-label": label }, svg);
  }

  // ---------- sign-in ----------

  function showSignIn(msg) {
    $("app").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = msg || "";
    $("actor").value = localStorage.getItem(ACTOR_KEY) || "";
    $("token").focus();
  }

  function signIn(ev) {
    ev.preventDefault();
    var tok = $("token").value.trim();
    var name = $("actor").value.trim();
    if (!tok) return;
    $("signin-button").disabled = true;
    fetch(API + "/pipelines", { headers: { "Authorization": "Bearer " + tok } }).then(function (r) {
      $("signin-button").disabled = false;
      if (r.status === 401) { $("signin-error").textContent = "This token is not one of the gateway's API tokens."; return; }
      if (!r.ok) { $("signin-error").textContent = "The gateway answered " + r.status + "; try again."; return; }
      sessionStorage.setItem(TOKEN_KEY, tok);
      sessionStorage.setItem(ACTOR_KEY, name);
      localStorage.setItem(ACTOR_KEY, name); // a name is no secret: offered again next time
      $("token").value = "";
      start();
    }, function () {
      $("signin-button").disabled = false;
      $("signin-error").textContent = "The gateway cannot be reached.";
    });
  }

  function signOut(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ACTOR_KEY);
    stopStream();
    closeDrawer();
    showSignIn(msg);
  }

  function start() {
    $("signin").hidden = true;
    $("app").hidden = false;
    $("who").textContent = actor() ? "as " + actor() : "";
    startStream();
    route();
  }

  // ---------- live stream (Server-Sent Events over fetch) ----------

  var stream = { ctrl: null, retry: 0, timer: 0 };

  function setLive(on, text) {
    state.live = on;
    var el = $("live");
    el.textContent = text;
    el.className = "live " + (on ? "on" : "off");
  }

  function startStream() {
    stopStream();
    var ctrl = new AbortController();
    stream.ctrl = ctrl;
    setLive(false, "connecting");
    fetch(API + "/board/stream", { headers: { "Authorization": "Bearer " + token(), "Accept": "text/event-stream" }, signal: ctrl.signal })
      .then(function (r) {
        if (r.status === 401) { signOut("The token was refused. Sign in again."); return; }
        if (!r.ok || !r.body) throw new Error("stream answered " + r.status);
        var reader = r.body.getReader();
        var dec = new TextDecoder();
        var buf = "";
        function pump() {
          return reader.read().then(function (res) {
            if (res.done) throw new Error("stream ended");
            buf += dec.decode(res.value, { stream: true });
            var i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              onSSE(buf.slice(0, i));
              buf = buf.slice(i + 2);
            }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        if (stream.ctrl !== ctrl || ctrl.signal.aborted) return;
        setLive(false, "reconnecting");
        stream.retry = Math.min(10000, stream.retry ? stream.retry * 2 : 500);
        stream.timer = setTimeout(startStream, stream.retry);
      });
  }

  function stopStream() {
    clearTimeout(stream.timer);
    if (stream.ctrl) stream.ctrl.abort();
    stream.ctrl = null;
  }

  function onSSE(block) {
    var event = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) event = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (event === "hello") {
      stream.retry = 0;
      setLive(true, "live");
      refresh(); // subscribed now: fetch what we show, so nothing is missed
    } else if (event === "change") {
      scheduleRefresh();
    }
  }

  function scheduleRefresh() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(function () { state.refreshTimer = 0; refresh(); }, 50);
  }

  // A slow fallback: messages are best effort, so look again now and then.
  setInterval(function () { if (token() && !$("app").hidden) refresh(true); }, 30000);

  function refresh(force) {
    if (!token()) return;
    if (state.page === "board") loadBoard(force);
    else if (state.page === "unmatched") loadUnmatched();
    else if (state.page === "failed") loadFailed(force);
    else if (state.page === "health") loadHealth();
    if (state.drawerItem) loadDrawer(state.drawerItem, force);
  }

  // ---------- routing ----------

  function route() {
    var parts = (location.hash || "#/board").slice(2).split("/");
    if (parts[0] === "item" && parts[1]) {
      // A link to one item (#/item/<id>): the board, with its drawer open.
      var id = decodeURIComponent(parts[1]);
      history.replaceState(null, "", "#/board");
      parts = ["board"];
      setTimeout(function () { openDrawer(id); }, 0);
    }
    var page = ["board", "unmatched", "failed", "health"].indexOf(parts[0]) >= 0 ? parts[0] : "board";
    var changed = page !== state.page;
    state.page = page;
    if (page === "board" && parts[1]) state.pipeline = decodeURIComponent(parts[1]);
    document.querySelectorAll(".top nav a").forEach(function (a) {
      if (a.getAttribute("data-page") === page) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    var main = $("main");
    if (changed || !main.firstChild) clear(main);
    refresh();
  }

  // ---------- board ----------

  // loadBoard fetches the board and renders it when it changed (a render
  // replaces the cards, which would swallow a click in progress); force
  // renders anyway, to bring the times at stage up to date.
  function loadBoard(force) {
    var q = state.pipeline ? "?pipeline=" + enc(state.pipeline) : "";
    return api("GET", "board" + q).then(function (b) {
      var key = JSON.stringify([b.pipeline, b.items]);
      if (!force && key === state.boardKey && $("columns")) return;
      state.boardKey = key;
      state.board = b;
      state.pipeline = b.pipeline.id;
      renderBoard();
    }, function (err) {
      if (err.status !== 401) toast("Board: " + err.message, true);
    });
  }

  function cardMatches(c) {
    if (state.filterResp && (c.responsible || "") !== state.filterResp) return false;
    var t = state.filterText.toLowerCase();
    if (!t) return true;
    return [c.contact_name, c.identity, c.responsible, c.id].some(function (s) {
      return s && s.toLowerCase().indexOf(t) >= 0;
    });
  }

  function renderBoard() {
    var b = state.board, main = $("main");
    if (state.page !== "board" || !b) return;
    if (drag.active) { drag.renderAfter = true; return; } // not under the user's pointer
    var focused = document.activeElement && document.activeElement.getAttribute("data-id");
    var focusedControl = document.activeElement && document.activeElement.id;
    var scroller = main.querySelector(".columns");
    var scrollX = scroller ? scroller.scrollLeft : 0;
    var colScroll = {};
    main.querySelectorAll(".column").forEach(function (c) { colScroll[c.getAttribute("data-stage")] = c.scrollTop; });

    var toolbar = main.querySelector(".toolbar");
    if (!toolbar) {
      clear(main);
      toolbar = buildToolbar();
      main.appendChild(h("h1", { class: "page", id: "board-title", text: "Board" }));
      main.appendChild(toolbar);
      main.appendChild(h("p", { class: "hint", id: "board-help",
        text: "Drag a card to another column to move it, or focus a card and press Alt+→ / Alt+← to move it one stage; Enter opens it." }));
      main.appendChild(h("div", { class: "columns", id: "columns" }));
    }
    fillToolbar(toolbar, b);

    var cols = $("columns");
    clear(cols);
    var prev = state.stages, next = {};
    var shown = 0;
    b.pipeline.stages.forEach(function (s, idx) {
      var cards = b.items.filter(function (c) { return c.stage === s.id; });
      var visible = cards.filter(cardMatches);
      shown += visible.length;
      var hid = "col-" + s.id;
      var head = h("header", { class: "col-head" },
        h("h2", { id: hid },
          h("span", { text: s.name || s.id }),
          h("span", { class: "count", "aria-label": visible.length + " items", text: visible.length === cards.length ? String(cards.length) : visible.length + "/" + cards.length }),
          s.final ? h("span", { class: "final " + s.final, text: s.final === "success" ? "final · won" : "final · lost" }) : null),
        s.triggers.length || s.actions.length ? h("ul", { class: "rules" },
          s.triggers.map(function (t) { return h("li", { class: "trigger", title: t.name, text: t.text }); }),
          s.actions.map(function (a) { return h("li", { class: "action", title: a.name || a.type, text: "On entry: " + a.text }); }))
          : (idx === 0 ? h("p", { class: "rules", text: "Where new items start." }) : null));
      var list = h("ol", { class: "cards", "aria-labelledby": hid });
      visible.forEach(function (c) {
        next[c.id] = c.stage;
        list.appendChild(h("li", null, renderCard(c, prev[c.id] !== undefined && prev[c.id] !== c.stage)));
      });
      if (!visible.length) list.appendChild(h("li", { class: "empty", text: cards.length ? "none match the filter" : "no items" }));
      cols.appendChild(h("section", { class: "column", "data-stage": s.id, "aria-labelledby": hid }, head, list));
    });
    b.items.forEach(function (c) { if (!(c.id in next)) next[c.id] = c.stage; });
    state.stages = next;
    $("board-summary").textContent = shown + " of " + b.items.length + " items" + (b.truncated ? " (only the first 1000 are shown)" : "");
    cols.scrollLeft = scrollX;
    cols.querySelectorAll(".column").forEach(function (c) { c.scrollTop = colScroll[c.getAttribute("data-stage")] || 0; });
    if (focused) {
      var el = cols.querySelector('.card[data-id="' + CSS.escape(focused) + '"]');
      if (el) el.focus();
    } else if (focusedControl && $(focusedControl)) {
      $(focusedControl).focus();
    }
  }

  function buildToolbar() {
    var pipeSel = h("select", { id: "pipeline", onchange: function () { location.hash = "#/board/" + enc(this.value); } });
    var respSel = h("select", { id: "f-resp", onchange: function () { state.filterResp = this.value; renderBoard(); } });
    var text = h("input", { id: "f-text", type: "search", placeholder: "name, email, id…",
      oninput: function () { state.filterText = this.value; renderBoard(); } });
    return h("div", { class: "toolbar" },
      h("label", { for: "pipeline" }, "Pipeline", pipeSel),
      h("label", { for: "f-resp" }, "Responsible", respSel),
      h("label", { for: "f-text" }, "Search", text),
      h("span", { class: "summary", id: "board-summary", "aria-live": "polite" }));
  }

  function fillToolbar(toolbar, b) {
    var pipeSel = $("pipeline");
    clear(pipeSel);
    b.pipelines.forEach(function (p) {
      pipeSel.appendChild(h("option", { value: p.id, selected: p.id === b.pipeline.id, text: p.name || p.id }));
    });
    var respSel = $("f-resp");
    var users = {};
    b.items.forEach(function (c) { if (c.responsible) users[c.responsible] = true; });
    if (state.filterResp) users[state.filterResp] = true;
    clear(respSel);
    respSel.appendChild(h("option", { value: "", text: "anyone" }));
    Object.keys(users).sort().forEach(function (u) {
      respSel.appendChild(h("option", { value: u, selected: u === state.filterResp, text: u }));
    });
  }

  function cardName(c) { return c.contact_name || c.identity || c.id; }

  function renderCard(c, arrived) {
    var ev = c.last_event;
    var label = ev ? "last event: " + ev.type + (ev.channel ? " (" + ev.channel + ")" : "") : "no event yet (created or moved by hand)";
    var el = h("button", {
      type: "button", class: "card" + (c.closed ? " closed" : "") + (arrived ? " arrived" : ""),
      "data-id": c.id, "data-stage": c.stage,
      "aria-label": cardName(c) + ", " + (c.responsible ? "responsible " + c.responsible + ", " : "") + "at this stage for " + ago(c.entered_at) + ", " + label,
      onclick: function (e) { if (drag.suppressClick) { e.preventDefault(); return; } openDrawer(c.id, el); },
      onkeydown: function (e) { cardKey(e, c); },
      onpointerdown: function (e) { dragStart(e, c, el); }
    },
    h("span", { class: "name", text: cardName(c) }),
    icon(ev && ev.type, label),
    h("span", { class: "meta" },
      c.responsible ? h("span", { class: "resp", text: c.responsible }) : h("span", { class: "muted", text: "nobody" }),
      " · ", h("time", { datetime: c.entered_at, title: "entered " + when(c.entered_at), text: ago(c.entered_at) + " here" })));
    return el;
  }

  function stageIndex(id) {
    var st = state.board.pipeline.stages;
    for (var i = 0; i < st.length; i++) if (st[i].id === id) return i;
    return -1;
  }

  function cardKey(e, c) {
    if (!e.altKey || (e.key !== "ArrowRight" && e.key !== "ArrowLeft")) return;
    e.preventDefault();
    var st = state.board.pipeline.stages;
    var i = stageIndex(c.stage) + (e.key === "ArrowRight" ? 1 : -1);
    if (i < 0 || i >= st.length) return;
    moveItem(c.id, st[i].id);
  }

  // moveItem is a manual move through the REST API; the stage's actions run
  // as for any move. The card moves at once and the board is fetched again.
  function moveItem(id, stage) {
    var body = { stage: stage };
    if (actor()) body.as_user = actor();
    if (state.board) {
      state.board.items.forEach(function (c) { if (c.id === id) c.stage = stage; });
      state.boardKey = ""; // what is shown is no longer what was fetched
      renderBoard();
    }
    return api("POST", "items/" + enc(id) + "/move", body).then(function (it) {
      toast("Moved to " + it.stage + (body.as_user ? " as " + body.as_user : ""));
      refresh();
      return it;
    }, function (err) {
      toast("Move refused: " + err.message, true);
      refresh(true);
      throw err;
    });
  }

  // ---------- drag and drop (pointer events: mouse, pen and touch) ----------

  var drag = { card: null, el: null, ghost: null, x: 0, y: 0, active: false, target: null, suppressClick: false, renderAfter: false };

  function dragStart(e, c, el) {
    if (e.button !== 0) return;
    drag.card = c; drag.el = el; drag.x = e.clientX; drag.y = e.clientY; drag.active = false; drag.target = null;
    document.addEventListener("pointermove", dragMove);
    document.addEventListener("pointerup", dragEnd);
    document.addEventListener("pointercancel", dragCancel);
  }

  function dragMove(e) {
    if (!drag.card) return;
    if (!drag.active) {
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) < 8) return;
      drag.active = true;
      drag.ghost = drag.el.cloneNode(true);
      drag.ghost.classList.add("ghost");
      drag.ghost.removeAttribute("data-id");
      document.body.appendChild(drag.ghost);
      drag.el.classList.add("dragging");
    }
    e.preventDefault();
    drag.ghost.style.left = (e.clientX - 20) + "px";
    drag.ghost.style.top = (e.clientY - 20) + "px";
    // Near an edge of the columns, scroll them: the next column may be off screen.
    var cols = $("columns"), r = cols.getBoundingClientRect();
    if (e.clientX < r.left + 40) cols.scrollLeft -= 20;
    else if (e.clientX > r.right - 40) cols.scrollLeft += 20;
    var under = document.elementFromPoint(e.clientX, e.clientY);
    var col = under && under.closest ? under.closest(".column") : null;
    if (col !== drag.target) {
      if (drag.target) drag.target.classList.remove("drop-target");
      drag.target = col;
      if (col && col.getAttribute("data-stage") !== drag.card.stage) col.classList.add("drop-target");
    }
  }

  function dragEnd() {
    var c = drag.card, col = drag.target, active = drag.active;
    dragCancel();
    if (!active) return;
    drag.suppressClick = true;
    setTimeout(function () { drag.suppressClick = false; }, 0);
    if (col && col.getAttribute("data-stage") !== c.stage) moveItem(c.id, col.getAttribute("data-stage")).catch(function () {});
  }

  function dragCancel() {
    document.removeEventListener("pointermove", dragMove);
    document.removeEventListener("pointerup", dragEnd);
    document.removeEventListener("pointercancel", dragCancel);
    if (drag.ghost) drag.ghost.remove();
    if (drag.el) drag.el.classList.remove("dragging");
    if (drag.target) drag.target.classList.remove("drop-target");
    drag.card = drag.el = drag.ghost = drag.target = null;
    drag.active = false;
    if (drag.renderAfter) { drag.renderAfter = false; renderBoard(); }
  }

  // ---------- drawer ----------

  function openDrawer(id, from) {
    state.drawerItem = id;
    state.drawerReturn = from || document.activeElement;
    state.open = {};
    state.drawerKey = "";
    $("drawer").hidden = false;
    $("drawer-backdrop").hidden = false;
    $("drawer-title").textContent = "Item " + id;
    clear($("drawer-body"));
    $("drawer-body").appendChild(h("p", { class: "muted", text: "Loading…" }));
    $("drawer").focus();
    loadDrawer(id);
  }

  function closeDrawer() {
    if ($("drawer").hidden) return;
    state.drawerItem = "";
    $("drawer").hidden = true;
    $("drawer-backdrop").hidden = true;
    var back = state.drawerReturn;
    state.drawerReturn = null;
    if (back && document.body.contains(back)) back.focus();
    else if (back && back.getAttribute && back.getAttribute("data-id")) {
      var el = document.querySelector('.card[data-id="' + CSS.escape(back.getAttribute("data-id")) + '"]');
      if (el) el.focus();
    }
  }

  var drawerSeq = 0;
  function loadDrawer(id, force) {
    var seq = ++drawerSeq;
    var item;
    api("GET", "items/" + enc(id)).then(function (it) {
      item = it;
      return Promise.all([
        it.contact_id ? api("GET", "contacts/" + enc(it.contact_id)).catch(function () { return null; }) : null,
        api("GET", "items/" + enc(id) + "/timeline"),
        api("GET", "actions?item=" + enc(id) + "&limit=100").catch(function () { return { actions: [] }; }),
        api("GET", "board/items/" + enc(id) + "/events").catch(function () { return { events: [] }; }),
        state.board && state.board.pipeline.id === it.pipeline ? state.board : api("GET", "board?pipeline=" + enc(it.pipeline))
      ]);
    }).then(function (r) {
      if (seq !== drawerSeq || state.drawerItem !== id) return;
      var key = JSON.stringify([item, r[0], r[1], r[2], r[3], r[4].pipeline]);
      if (!force && key === state.drawerKey) return; // unchanged: leave the user's view alone
      state.drawerKey = key;
      renderDrawer(item, r[0], r[1].entries || [], r[2].actions || [], r[3].events || [], r[4]);
    }, function (err) {
      if (seq !== drawerSeq) return;
      clear($("drawer-body"));
      $("drawer-body").appendChild(h("p", { class: "error", text: "Cannot load the item: " + err.message }));
    });
  }

  function renderDrawer(it, contact, entries, actions, nonMoves, board) {
    var body = $("drawer-body");
    var scroll = body.scrollTop;
    clear(body);
    var name = (contact && contact.name) || (contact && contact.identities && contact.identities[0] && contact.identities[0].value) || it.id;
    $("drawer-title").textContent = name;

    var stages = board ? board.pipeline.stages : [];
    var moveSel = h("select", { id: "move-to", "aria-label": "Move to stage" },
      stages.map(function (s) { return h("option", { value: s.id, selected: s.id === it.stage, text: (s.name || s.id) + (s.final ? " (final)" : "") }); }));
    var moveBtn = h("button", { type: "button", id: "move-button", onclick: function () {
      if (moveSel.value === it.stage) { toast("The item is already at " + it.stage); return; }
      moveItem(it.id, moveSel.value).catch(function () {});
    } }, "Move");

    body.appendChild(h("dl", { class: "kv" },
      kv("Stage", it.stage + (it.closed ? " (closed)" : "")), kv("Pipeline", it.pipeline),
      kv("Responsible", it.responsible || "nobody"), kv("Item id", it.id),
      kv("Created", when(it.created_at)), kv("Updated", when(it.updated_at))));
    body.appendChild(h("div", { class: "form-inline" }, h("label", { for: "move-to" }, "Move to", moveSel), moveBtn));

    body.appendChild(h("h3", { text: "Contact" }));
    if (contact) {
      body.appendChild(h("dl", { class: "kv" }, kv("Name", contact.name || "—"),
        (contact.identities || []).map(function (i) { return kv(i.kind, i.value); })));
    } else body.appendChild(h("p", { class: "muted", text: "No contact." }));

    body.appendChild(h("h3", { text: "Fields" }));
    var fields = it.fields || {};
    var keys = Object.keys(fields).sort();
    if (keys.length) body.appendChild(h("dl", { class: "kv" }, keys.map(function (k) { return kv(k, fields[k]); })));
    else body.appendChild(h("p", { class: "muted", text: "No fields." }));

    body.appendChild(h("h3", { text: "Actions" }));
    if (actions.length) {
      body.appendChild(h("ul", { class: "list", id: "item-actions" }, actions.map(function (a) { return actionRow(a, false); })));
    } else body.appendChild(h("p", { class: "muted", text: "No actions ran for this item." }));

    body.appendChild(h("h3", { text: "Timeline" }));
    var rows = entries.map(function (e) { return { at: e.at, entry: e }; })
      .concat(nonMoves.map(function (n) { return { at: n.at, nonMove: n }; }));
    rows.sort(function (a, b) { return new Date(b.at) - new Date(a.at); });
    body.appendChild(h("ol", { class: "timeline", id: "timeline" }, rows.map(function (r) {
      return r.entry ? timelineEntry(r.entry, it) : nonMoveEntry(r.nonMove, it);
    })));
    body.scrollTop = scroll;
  }

  function kv(k, v) { return [h("dt", { text: k }), h("dd", { text: v })]; }

  function timelineEntry(e, it) {
    var text, cls = e.kind;
    if (e.kind === "move") text = (e.from || "?") + " → " + e.to;
    else if (e.kind === "created") text = "Created at " + (e.to || it.stage);
    else if (e.kind === "action") text = "Action " + (e.action || "") + (e.message ? ": " + e.message : "");
    else text = e.kind + (e.message ? ": " + e.message : "");
    var li = h("li", { class: cls, "data-kind": e.kind },
      h("div", null, e.kind === "action" ? h("span", { text: text }) : h("strong", { text: text })),
      h("div", { class: "when" },
        when(e.at),
        e.actor ? [" · by ", h("span", { class: "actor", text: e.actor })] : null,
        e.trigger ? " · trigger “" + e.trigger + "”" : (e.kind === "move" && !e.event_id ? " · moved by hand" : ""),
        e.kind === "move" && e.message && e.message !== "manual move" ? " · " + e.message : ""));
    if (e.event_id) li.appendChild(explainToggle(e.event_id, it.id, "event " + e.event_id));
    return li;
  }

  function nonMoveEntry(n, it) {
    return h("li", { class: "nonmove", "data-kind": "nonmove" },
      h("div", null, h("strong", { text: "Did not move (" + n.type + ")" })),
      h("div", { class: "when" }, when(n.at), " · at " + n.stage, n.note ? " · " + n.note : ""),
      explainToggle(n.event_id, it.id, "why not? event " + n.event_id));
  }

  // explainToggle is a button that shows, under it, what the engine decided
  // for one event and this item: every trigger in words, and the raw input.
  function explainToggle(eventID, itemID, label) {
    var box = h("div", { class: "explain", hidden: true });
    var btn = h("button", { type: "button", class: "link explain-toggle", "aria-expanded": "false", "data-event": eventID, text: label });
    function show() {
      box.hidden = false;
      btn.setAttribute("aria-expanded", "true");
      clear(box);
      box.appendChild(h("span", { class: "muted", text: "Loading…" }));
      api("GET", "events/" + enc(eventID)).then(function (rec) { renderExplain(box, rec, itemID); },
        function (err) { clear(box); box.appendChild(h("span", { class: "error", text: err.message })); });
    }
    btn.addEventListener("click", function () {
      if (box.hidden) { state.open[eventID] = true; show(); }
      else { delete state.open[eventID]; box.hidden = true; btn.setAttribute("aria-expanded", "false"); }
    });
    if (state.open[eventID]) show();
    return h("div", null, btn, box);
  }

  var OUTCOMES = {
    won: function (d) { return "fired and moved the item to " + d.stage; },
    lost_to_earlier_stage: function (d) { return "matched, but did not fire: " + (d.reason || "a trigger on an earlier stage won"); },
    conditions_not_met: function (d) { return "did not match: " + (d.reason || "its conditions were not met"); },
    stage_behind: function (d) { return "could not fire: " + (d.reason || "its stage is behind the item's") + ", and it does not allow moving back"; },
    not_eligible: function (d) { return "could not fire: " + (d.reason || "not eligible"); }
  };

  function decisionWords(d) {
    var f = OUTCOMES[d.outcome];
    return "Trigger “" + d.trigger + "” on " + d.stage + " " + (f ? f(d) : d.outcome + (d.reason ? ": " + d.reason : ""));
  }

  function renderExplain(box, rec, itemID) {
    clear(box);
    var ev = rec.event;
    var mine = (rec.items || []).filter(function (x) { return x.item_id === itemID; })[0];
    box.appendChild(h("div", null, h("strong", { text: ev.type }), " from ", h("code", { text: ev.connector || "?" }),
      ev.channel ? " · " + ev.channel : "", " · " + when(ev.occurred_at)));
    if (mine) {
      box.appendChild(h("p", { class: "verdict", text: mine.moved ? "Moved the item from " + mine.from + " to " + mine.to + "." :
        "Did not move the item (it stayed at " + mine.from + ")" + (mine.note ? ": " + mine.note : "") + "." }));
      if (mine.decisions && mine.decisions.length) {
        box.appendChild(h("ul", { class: "decisions" }, mine.decisions.map(function (d) {
          return h("li", { class: d.outcome, text: decisionWords(d) });
        })));
      } else if (!mine.moved) {
        box.appendChild(h("p", { class: "muted", text: "No trigger of this pipeline listens to " + ev.type + " events." }));
      }
    } else {
      box.appendChild(h("p", { class: "muted", text: "The engine recorded no decision for this item." }));
    }
    var attrs = ev.attrs || {};
    var ak = Object.keys(attrs).sort();
    if (ak.length) box.appendChild(h("dl", { class: "kv" }, ak.map(function (k) { return kv(k, attrs[k]); })));
    var raw = decodeRaw(ev.raw);
    box.appendChild(h("details", null, h("summary", { text: "Raw input" }), h("pre", { class: "raw", text: raw || "(none kept)" })));
  }

  function decodeRaw(b64) {
    if (!b64) return "";
    try {
      var bin = atob(b64), bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new TextDecoder().decode(bytes);
    } catch (e) { return b64; }
  }

  function actionRow(a, withItem) {
    var retry = a.status === "failed" ? h("button", { type: "button", class: "retry", "data-action": a.id, onclick: function () {
      this.disabled = true;
      api("POST", "actions/" + enc(a.id) + "/retry").then(function () { toast("Action queued again"); refresh(); },
        function (err) { toast("Retry refused: " + err.message, true); refresh(true); });
    } }, "Retry") : null;
    var timing = a.status === "pending" ? "due " + when(a.due) : "updated " + when(a.updated_at);
    return h("li", { class: "row action-row", "data-action": a.id, "data-status": a.status },
      h("div", { class: "title" }, (a.name || a.type) + " ", h("span", { class: "status " + a.status, text: a.status })),
      h("div", { class: "meta", text: (withItem ? "item " + a.item_id + " · " : "") + a.type + " · on entering " + a.stage + " · " + a.attempts + " attempt" + (a.attempts === 1 ? "" : "s") +
        " · " + timing }),
      a.last_error ? h("div", { class: "meta" + (a.status === "failed" ? " error" : ""),
        text: (a.status === "failed" ? "" : "earlier error: ") + a.last_error }) : null,
      a.note ? h("div", { class: "meta", text: a.note }) : null,
      retry || withItem ? h("div", { class: "buttons" }, retry,
        withItem ? h("button", { type: "button", class: "secondary", onclick: function () { openDrawer(a.item_id, this); } }, "Open item") : null) : null);
  }

  // ---------- unmatched events ----------

  function page(title, id) {
    var main = $("main");
    var box = $(id);
    if (!box) {
      clear(main);
      main.appendChild(h("h1", { class: "page", text: title }));
      box = h("div", { id: id });
      main.appendChild(box);
    }
    return box;
  }

  function loadUnmatched() {
    var box = page("Unmatched events", "unmatched");
    var q = state.pipeline ? "?pipeline=" + enc(state.pipeline) : "";
    Promise.all([api("GET", "unmatched?limit=100"), api("GET", "board" + q)]).then(function (r) {
      if (state.page !== "unmatched") return;
      var open = box.querySelector(".lead-form");
      if (open) return; // do not disturb a form being filled in
      // Re-render only what changed: a list drawn again under the pointer
      // would swallow the click of a user reaching for a button.
      var sig = JSON.stringify(r);
      if (box.firstChild && box.sig === sig) return;
      box.sig = sig;
      clear(box);
      var evs = r[0].events || [];
      if (!evs.length) { box.appendChild(h("p", { class: "muted", text: "No unmatched events: every event reached an item." })); return; }
      box.appendChild(h("p", { class: "hint", text: "Events that reached no item. Create a lead from one to keep its customer." }));
      box.appendChild(h("ul", { class: "list" }, evs.map(function (rec) { return unmatchedRow(rec, r[1]); })));
    }, function (err) { toast("Unmatched: " + err.message, true); });
  }

  function unmatchedRow(rec, board) {
    var ev = rec.event, s = ev.subject || {};
    var who = [s.name, s.email, s.phone, s.visitor_id ? "visitor " + s.visitor_id : ""].filter(Boolean).join(" · ") || "unknown sender";
    var lead = board.items.filter(function (c) { return c.identity && (c.identity === s.email || c.identity === s.phone); })[0];
    var canCreate = !!(s.email || s.phone) && !lead;
    var li = h("li", { class: "row unmatched-row", "data-event": ev.id },
      h("div", { class: "title" }, ev.type + " ", h("span", { class: "muted", text: "from " + ev.connector })),
      h("div", { class: "meta", text: who }),
      h("div", { class: "meta", text: when(ev.received_at) + (rec.note ? " · " + rec.note : "") }));
    var btns = h("div", { class: "buttons" });
    var create = h("button", { type: "button", class: "create-lead", disabled: !canCreate,
      title: canCreate ? "" : lead ? "This customer has a lead now" : "The event names no email or phone", onclick: function () { leadForm(li, ev, board); create.disabled = true; } },
      "Create a lead from this");
    btns.appendChild(create);
    if (lead) {
      btns.appendChild(h("span", { class: "meta", text: "Has a lead now at " + lead.stage + " " }));
      btns.appendChild(h("button", { type: "button", class: "secondary", onclick: function () { openDrawer(lead.id, this); } }, "Open it"));
    }
    li.appendChild(btns);
    li.appendChild(h("details", null, h("summary", { text: "Raw input" }), h("pre", { text: decodeRaw(ev.raw) || "(none kept)" })));
    return li;
  }

  function leadForm(li, ev, board) {
    var s = ev.subject || {};
    var pipes = board.pipelines;
    var pipeSel = h("select", { name: "pipeline" }, pipes.map(function (p) { return h("option", { value: p.id, text: p.name || p.id }); }));
    var name = h("input", { name: "name", value: s.name || (ev.attrs && (ev.attrs.from_name || ev.attrs["field.name"])) || "" });
    var resp = h("input", { name: "responsible", value: actor() });
    var form = h("form", { class: "form-inline lead-form", onsubmit: function (e) {
      e.preventDefault();
      var contact = { name: name.value.trim() };
      if (s.email) contact.email = s.email;
      if (s.phone) contact.phone = s.phone;
      api("POST", "items", { pipeline: pipeSel.value, responsible: resp.value.trim(), contact: contact }).then(function (it) {
        toast("Lead created at " + it.stage);
        form.remove();
        loadUnmatched();
        openDrawer(it.id);
      }, function (err) { toast("Not created: " + err.message, true); });
    } },
      h("label", null, "Pipeline", pipeSel), h("label", null, "Name", name), h("label", null, "Responsible", resp),
      h("button", { type: "submit", class: "create-submit" }, "Create lead"),
      h("button", { type: "button", class: "secondary", onclick: function () {
        form.remove();
        li.querySelector("button.create-lead").disabled = false;
        loadUnmatched();
      } }, "Cancel"));
    li.appendChild(form);
    name.focus();
  }

  // ---------- failed actions and parked events ----------

  function loadFailed(force) {
    var box = page("Failed", "failed");
    Promise.all([api("GET", "actions?status=failed&limit=100"), api("GET", "events?status=failed&limit=100")]).then(function (r) {
      if (state.page !== "failed") return;
      var key = JSON.stringify(r);
      if (!force && key === box.getAttribute("data-key")) return; // unchanged: keep the buttons under the pointer
      box.setAttribute("data-key", key);
      clear(box);
      var acts = r[0].actions || [], evs = r[1].events || [];
      box.appendChild(h("h2", { text: "Failed actions (" + acts.length + ")" }));
      if (acts.length) box.appendChild(h("ul", { class: "list", id: "failed-actions" }, acts.map(function (a) { return actionRow(a, true); })));
      else box.appendChild(h("p", { class: "muted", text: "No failed actions." }));
      box.appendChild(h("h2", { text: "Parked events (" + evs.length + ")" }));
      if (evs.length) box.appendChild(h("ul", { class: "list" }, evs.map(function (rec) {
        return h("li", { class: "row" },
          h("div", { class: "title", text: rec.event.type + " · " + rec.event.id }),
          h("div", { class: "meta error", text: rec.note || "" }),
          h("div", { class: "buttons" }, h("button", { type: "button", onclick: function () {
            this.disabled = true;
            api("POST", "events/" + enc(rec.event.id) + "/retry").then(function () { toast("Event put back into the log"); refresh(); },
              function (err) { toast("Retry refused: " + err.message, true); box.removeAttribute("data-key"); refresh(); });
          } }, "Retry")));
      })));
      else box.appendChild(h("p", { class: "muted", text: "No parked events: every event could be applied." }));
    }, function (err) { toast("Failed: " + err.message, true); });
  }

  // ---------- connector health ----------

  var healthTimer = 0;
  function loadHealth() {
    var box = page("Health", "health");
    clearTimeout(healthTimer);
    healthTimer = setTimeout(function () { if (state.page === "health") loadHealth(); }, 5000);
    Promise.all([
      fetch("/readyz").then(function (r) { return r.json(); }).catch(function () { return { status: "unreachable", checks: {} }; }),
      fetch("/metrics").then(function (r) { return r.text(); }).catch(function () { return ""; })
    ]).then(function (r) {
      if (state.page !== "health") return;
      var ready = r[0], m = parseMetrics(r[1]), now = Date.now();
      var prev = state.health;
      state.health = { at: now, m: m };
      clear(box);
      box.appendChild(h("p", null, "Gateway: ", h("span", { class: "status " + ready.status, id: "ready-status", text: ready.status })));
      var checks = ready.checks || {};
      box.appendChild(h("table", { id: "checks" }, h("thead", null, h("tr", null, h("th", { text: "Part" }), h("th", { text: "State" }))),
        h("tbody", null, Object.keys(checks).sort().map(function (k) {
          var v = checks[k];
          return h("tr", null, h("td", { text: k.replace(/^connector:/, "connector ") }), h("td", { text: typeof v === "string" ? v : JSON.stringify(v) }));
        }))));
      function rate(name) {
        if (!prev) return "";
        var dt = (now - prev.at) / 60000;
        var d = (m[name] || 0) - (prev.m[name] || 0);
        return dt > 0 ? (d / dt).toFixed(1) + "/min" : "";
      }
      var lag = m.stagegate_intake_lag_seconds_count ? (m.stagegate_intake_lag_seconds_sum / m.stagegate_intake_lag_seconds_count * 1000).toFixed(1) + " ms" : "—";
      var tiles = [
        ["Events received", "stagegate_events_received_total"], ["Duplicates", "stagegate_events_duplicate_total"],
        ["Rejected", "stagegate_events_rejected_total"], ["Store unavailable (503)", "stagegate_intake_unavailable_total"],
        ["Moves", "stagegate_moves_total"], ["Action attempts", "stagegate_actions_total"],
        ["Actions failed", "stagegate_actions_total{result=failed}"]
      ];
      box.appendChild(h("h2", { text: "Since start (this instance)" }));
      box.appendChild(h("div", { class: "cards-grid" },
        tiles.map(function (t) {
          return h("div", { class: "metric" }, h("div", { class: "v", text: String(m[t[1]] || 0) }),
            h("div", { class: "l", text: t[0] + (rate(t[1]) ? " · " + rate(t[1]) : "") }));
        }),
        h("div", { class: "metric" }, h("div", { class: "v", text: String(m.stagegate_outbox_depth || 0) }), h("div", { class: "l", text: "Actions waiting" })),
        h("div", { class: "metric" }, h("div", { class: "v", text: lag }), h("div", { class: "l", text: "Mean intake lag" }))));
      var per = m.connectors || {}, prevPer = prev && prev.m.connectors || {};
      var names = Object.keys(per).sort();
      box.appendChild(h("h2", { text: "Connectors" }));
      if (names.length) {
        box.appendChild(h("table", { id: "connectors" },
          h("thead", null, h("tr", null, ["Connector", "Received", "Rate", "Duplicates", "Rejected", "503s"].map(function (x) { return h("th", { text: x }); }))),
          h("tbody", null, names.map(function (n) {
            var c = per[n], p = prevPer[n] || {};
            var dt = prev ? (now - prev.at) / 60000 : 0;
            var rcv = c.stagegate_events_received_total || 0;
            return h("tr", null, h("td", { text: n }), h("td", { text: String(rcv) }),
              h("td", { text: dt > 0 ? ((rcv - (p.stagegate_events_received_total || 0)) / dt).toFixed(1) + "/min" : "—" }),
              h("td", { text: String(c.stagegate_events_duplicate_total || 0) }),
              h("td", { text: String(c.stagegate_events_rejected_total || 0) }),
              h("td", { text: String(c.stagegate_intake_unavailable_total || 0) }));
          }))));
      } else box.appendChild(h("p", { class: "muted", text: "No connector has taken an event since this gateway started." }));
      box.appendChild(h("p", { class: "hint", text: "Rates are per minute over the last 5 s; counters are this gateway's since it started (Prometheus: /metrics)." }));
    });
  }

  // parseMetrics sums the samples of each metric family of the Prometheus
  // text format; "name{result=failed}" keeps the failed ones apart.
  function parseMetrics(text) {
    var m = {};
    text.split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === "#") return;
      var sp = line.lastIndexOf(" ");
      var key = line.slice(0, sp), v = parseFloat(line.slice(sp + 1));
      if (isNaN(v)) return;
      var brace = key.indexOf("{");
      var name = brace >= 0 ? key.slice(0, brace) : key;
      m[name] = (m[name] || 0) + v;
      var conn = /connector="([^"]*)"/.exec(key);
      if (conn && name.indexOf("stagegate_events_") === 0 || conn && name === "stagegate_intake_unavailable_total") {
        var per = m.connectors || (m.connectors = {});
        var c = per[conn[1]] || (per[conn[1]] = {});
        c[name] = (c[name] || 0) + v;
      }
      if (name === "stagegate_actions_total" && key.indexOf('result="failed"') >= 0) {
        m["stagegate_actions_total{result=failed}"] = (m["stagegate_actions_total{result=failed}"] || 0) + v;
      }
    });
    return m;
  }

  // ---------- wiring ----------

  document.addEventListener("DOMContentLoaded", function () {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", function () { signOut(""); });
    $("drawer-close").addEventListener("click", closeDrawer);
    $("drawer-backdrop").addEventListener("click", closeDrawer);
    document.addEventListener("keydown", function (e) {
      if ($("drawer").hidden) return;
      if (e.key === "Escape") { e.preventDefault(); closeDrawer(); return; }
      if (e.key !== "Tab") return;
      // The drawer is modal: Tab cycles through its controls.
      var f = Array.prototype.filter.call($("drawer").querySelectorAll("button, select, input, summary, a[href]"),
        function (el) { return !el.disabled && el.offsetParent !== null; });
      if (!f.length) return;
      var first = f[0], last = f[f.length - 1];
      if (e.shiftKey && (document.activeElement === first || document.activeElement === $("drawer"))) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      else if (!$("drawer").contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    });
    window.addEventListener("hashchange", function () { if (token()) route(); });
    if (token()) start(); else showSignIn("");
  });

  // For tests and the curious: what the page knows.
  window.StagegateBoard = {
    state: function () { return { page: state.page, pipeline: state.pipeline, live: state.live, items: state.board ? state.board.items : [] }; }
  };
})();
