// Paramedic console: light progressive enhancement. Every page works without this file.
(function () {
  "use strict";
  var POLL_MS = 3000; // new and changed incidents show within 5 s

  function poll(live) {
    var url = live.getAttribute("data-rows-url");
    var last = live.innerHTML;
    function tick() {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (resp.status === 401) { window.location.reload(); return null; }
          return resp.ok ? resp.text() : null;
        })
        .then(function (html) {
          // The fragment is rendered (and escaped) by the server, like the page itself.
          if (html !== null && html !== last) { live.innerHTML = html; last = html; }
        })
        .catch(function () { /* the next tick retries */ });
    }
    window.setInterval(tick, POLL_MS);
  }

  function autoSubmit(form) {
    // Filters apply as soon as a choice changes; the Apply button stays for keyboards and no-JS.
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (el) {
      el.addEventListener("change", function () { form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live) { poll(live); }
    var filters = document.querySelector("form.filters");
    if (filters) { autoSubmit(filters); }
  });
})();
