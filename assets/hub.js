// The dashboard's "Sites" section (shepherd run --hub): every 10 s, fetch this same page
// (with its ?site= filter) and swap in the fresh section, so a site's state and age move
// without a reload. The server decides what is live, stale or offline; this only copies.
(function () {
  "use strict";
  var section = document.getElementById("hub-sites");
  if (!section || !window.fetch || !window.DOMParser) return;
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("hub-sites");
        var current = document.getElementById("hub-sites");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, 10000);
})();
