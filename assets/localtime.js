// Times rendered by the server in UTC are shown in the browser's local time, with seconds:
// every element with data-localtime (Unix ms).
(function () {
  "use strict";
  for (const el of document.querySelectorAll("[data-localtime]")) {
    const ts = Number(el.dataset.localtime);
    if (!isFinite(ts)) continue;
    el.textContent = new Date(ts).toLocaleString([], {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    el.title = new Date(ts).toISOString();
  }
})();
