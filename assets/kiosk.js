// Shared kiosk poller. Views register a renderer with Kiosk.onData(fn). Every few seconds it
// fetches /api/herd_data; when that fails it keeps the last values, dims them and says
// "data is stale since …", and keeps trying, so a kiosk heals by itself after a restart.
// When the server answers with a different version the page reloads to get the new assets.
(function () {
  "use strict";
  const POLL_MS = 3000, TIMEOUT_MS = 5000, STALE_MS = 10000;
  const handlers = [];
  let lastOk = Date.now(), lastData = null;
  const version = document.body.dataset.version;
  // A kiosk opened as /kiosk/clock?token=… (read-only token, [web] protect = "all") sends it
  // with every request, as a header so it stays out of logs.
  const token = new URLSearchParams(location.search).get("token");
  function api(path, opts) {
    const o = Object.assign({ cache: "no-store" }, opts || {});
    if (token) o.headers = Object.assign({}, o.headers, { Authorization: "Bearer " + token });
    return fetch(path, o);
  }

  const fmt = {
    ...window.ShepherdFormat,
    temp: (v) => window.ShepherdFormat.temp(v, "—"),
    time: (ts) => new Date(ts).toLocaleTimeString(),
  };

  function set(key, text) {
    for (const el of document.querySelectorAll('[data-f="' + key + '"]')) el.textContent = text;
  }

  function markStale() {
    const old = Date.now() - lastOk > STALE_MS;
    document.body.classList.toggle("is-stale", old);
    const banner = document.getElementById("stale");
    if (banner) {
      banner.hidden = !old;
      if (old) document.getElementById("stale-since").textContent = fmt.time(lastOk);
    }
  }

  async function poll() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      const r = await api("/api/herd_data", { signal: ctl.signal });
      if (r.ok) {
        const data = await r.json();
        if (version && data.version && data.version !== version) { location.reload(); return; }
        lastOk = Date.now();
        lastData = data;
        for (const h of handlers) { try { h(data); } catch (e) { console.warn("kiosk view:", e); } }
        // The celebration (celebrate.js) listens for this.
        document.dispatchEvent(new CustomEvent("shepherd:herd", { detail: data }));
      }
    } catch (e) { /* server away: keep the last values, marked stale, and try again */ }
    clearTimeout(timer);
    markStale();
  }

  window.Kiosk = {
    fmt, set, api,
    onData(fn) { handlers.push(fn); if (lastData) fn(lastData); },
    last() { return lastData; },
  };
  setInterval(poll, POLL_MS);
  setInterval(markStale, 1000);
  setTimeout(poll, 0);
})();
