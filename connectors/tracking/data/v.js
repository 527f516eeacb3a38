/* Stagegate site visit tracker. Include on every page of your site:
   <script async src="https://GATEWAY/t/v.js"></script>
   It keeps a first-party visitor id (cookie sg_vid on your domain, and
   localStorage) and reports each page view to the gateway. A visitor
   becomes known by clicking a tracked email link (the landing URL carries
   sg_t=...) or by submitting a form with an email field on your site. */
(function () {
  "use strict";
  var s = document.currentScript;
  if (!s || !s.src) return;
  var endpoint = new URL(s.src).origin + "/t/v";
  var NAME = "sg_vid", VALID = /^[A-Za-z0-9-]{16,64}$/;

  function readCookie() {
    var m = document.cookie.match(/(?:^|;\s*)sg_vid=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function newID() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  var vid = readCookie();
  if (!vid || !VALID.test(vid)) {
    try { vid = localStorage.getItem(NAME); } catch (e) { vid = null; }
  }
  if (!vid || !VALID.test(vid)) vid = newID();
  document.cookie = NAME + "=" + vid + "; path=/; max-age=31536000; SameSite=Lax" +
    (location.protocol === "https:" ? "; Secure" : "");
  try { localStorage.setItem(NAME, vid); } catch (e) { /* private mode */ }

  function send(o) {
    var body = JSON.stringify(o);
    // A text/plain beacon is a "simple" cross-origin request: no preflight.
    if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    fetch(endpoint, { method: "POST", body: body, keepalive: true, mode: "no-cors", credentials: "omit" });
  }

  var url = new URL(location.href), token = url.searchParams.get("sg_t");
  if (token) {
    url.searchParams.delete("sg_t");
    if (history.replaceState) history.replaceState(history.state, "", url.toString());
  }
  var view = { v: vid, u: url.toString(), r: document.referrer || "" };
  if (token) view.t = token;
  send(view);

  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!f || !f.querySelector) return;
    var em = f.querySelector('input[type="email"], input[name="email"]');
    if (em && em.value && em.value.indexOf("@") > 0) send({ v: vid, u: location.href, e: em.value });
  }, true);
})();
