// The port map redraws itself when a device is plugged in or unplugged: the server says so on
// /api/ports/events, and the map is fetched again. Where the stream is refused (too many open)
// or unsupported, the page reloads itself every 10 s instead.
"use strict";
(() => {
  const map = document.getElementById("port-map");
  const fallback = () => setTimeout(() => window.location.reload(), 10000);
  if (!map || !window.EventSource) {
    fallback();
    return;
  }
  const redraw = async () => {
    try {
      const r = await fetch(window.location.pathname, { cache: "no-store" });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = doc.getElementById("port-map");
      if (fresh) map.replaceChildren(...fresh.childNodes);
    } catch (_) {
      // The next event (or the EventSource's reconnect) tries again.
    }
  };
  const es = new EventSource("/api/ports/events");
  es.addEventListener("ports", redraw);
  // A reconnect may have missed a change.
  es.addEventListener("open", redraw);
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) fallback();
  });
})();
