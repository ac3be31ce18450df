// Live dashboard: polls /api/herd_data and updates the table in place. Text goes through
// textContent only, so nothing from the server is ever parsed as HTML.
(function () {
  "use strict";
  const table = document.getElementById("herd");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  let lastOk = Date.now(), version = null;
  let skew = Number(table.dataset.serverTime || Date.now()) - Date.now();

  const fmt = {
    ...window.ShepherdFormat,
    // Mirrors src/web/format.rs.
    hashrateHs: (v) => {
      if (v == null) return "—";
      const u = ["H/s", "KH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
      for (const unit of u) { if (v < 1000) return v.toFixed(2) + " " + unit; v /= 1000; }
      return v.toFixed(2) + " ZH/s";
    },
    words: (v) => {
      const names = [[1e18, "quintillion"], [1e15, "quadrillion"], [1e12, "trillion"], [1e9, "billion"], [1e6, "million"], [1e3, "thousand"]];
      if (v >= 1e21) return v.toExponential(1).replace("e+", "e");
      for (const [scale, name] of names) {
        if (v >= scale) { const n = v / scale; return (n < 10 ? n.toFixed(1) : n.toFixed(0)) + " " + name; }
      }
      return v.toFixed(0);
    },
    years: (y) => y == null ? "—" : y >= 1 ? fmt.words(y) + " years" : (y * 365.25).toFixed(1) + " days",
    chance: (p) => p == null ? "—" : p >= 0.001 ? (p * 100).toFixed(1) + " %" : p > 0 ? "1 in " + fmt.words(1 / p) : "0",
    clock: (ts) => {
      const d = new Date(ts);
      return new Date().toDateString() === d.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
    },
    ago: (ts) => {
      if (ts == null) return "never";
      const s = Math.max(0, Math.round((Date.now() + skew - ts) / 1000));
      return s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min ago" : Math.floor(s / 3600) + " h ago";
    },
  };

  function cell(row, key) { return row.querySelector('[data-k="' + key + '"]'); }

  const COLS = [["name", "Miner"], ["status", "Status"], ["hashrate", "Hashrate"], ["spark", "Last hour"],
    ["avg24", "24 h avg"], ["temp", "Temp"], ["shares", "Shares"], ["best", "Best diff"], ["uptime", "Uptime"],
    ["seen", "Last seen"], ["pool", "Pool"], ["config", "Config"]];

  function rowFor(m) {
    let row = tbody.querySelector('tr[data-id="' + m.id + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = m.id;
      for (const [k, label] of COLS) {
        const td = document.createElement("td");
        td.dataset.k = k;
        td.dataset.label = label;
        if (!["name", "status", "seen", "spark", "pool"].includes(k)) td.className = "num";
        row.appendChild(td);
      }
      const a = document.createElement("a");
      a.href = "/miners/" + encodeURIComponent(m.id);
      cell(row, "name").appendChild(a);
      tbody.appendChild(row);
    }
    return row;
  }

  // Sorting: click a header; click again to reverse. Values come from the last poll.
  let byId = new Map(), sortKey = null, sortDir = 1;
  const STATUS_ORDER = { online: 0, stalled: 1, no_data: 2, error: 3, offline: 4 };
  const DRIFT_ORDER = { drifted: 0, unknown: 1, in_sync: 2 };
  const sortValue = {
    name: (m) => m.name.toLowerCase(), status: (m) => STATUS_ORDER[m.status] ?? 9,
    hashrate: (m) => m.hashrate_khs ?? -1, avg24: (m) => m.hashrate_avg_24h ?? -1,
    temp: (m) => m.temperature ?? -1, shares: (m) => m.accepted, best: (m) => m.best_diff ?? -1,
    uptime: (m) => m.uptime_secs ?? -1, seen: (m) => m.last_seen ?? 0, pool: (m) => (m.pool || "").toLowerCase(),
    config: (m) => DRIFT_ORDER[m.fleet && m.fleet.drift.state] ?? 9,
  };
  function applySort() {
    const rows = [...tbody.querySelectorAll("tr")];
    if (!sortKey) {
      // Unsorted means problems first: a dead miner is the first row, not one among many.
      const order = new Map(fmt.problemsFirst([...byId.values()]).map((m, i) => [String(m.id), i]));
      rows.sort((a, b) => (order.get(a.dataset.id) ?? 1e9) - (order.get(b.dataset.id) ?? 1e9));
      for (const r of rows) tbody.appendChild(r);
      return;
    }
    const f = sortValue[sortKey];
    rows.sort((a, b) => {
      const ma = byId.get(a.dataset.id), mb = byId.get(b.dataset.id);
      if (!ma || !mb) return 0;
      const va = f(ma), vb = f(mb);
      return (va < vb ? -1 : va > vb ? 1 : 0) * sortDir;
    });
    for (const r of rows) tbody.appendChild(r);
    for (const th of table.querySelectorAll("th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none");
    }
  }
  for (const th of table.querySelectorAll("th[data-sort]")) {
    th.tabIndex = 0;
    const go = () => {
      if (sortKey === th.dataset.sort) sortDir = -sortDir; else { sortKey = th.dataset.sort; sortDir = 1; }
      applySort();
    };
    th.addEventListener("click", go);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  }

  // Sparklines: the last hour of per-minute hashrate, redrawn once a minute.
  const SVGNS = "http://www.w3.org/2000/svg";
  function spark(values) {
    if (values.length === 1) values = [values[0], values[0]];
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("viewBox", "0 0 100 24");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "spark");
    // Scaled to the data, as src/web/charts.rs y_bounds(…, false): the wobble shows.
    const hi0 = Math.max(...values), lo0 = Math.min(...values);
    const pad = Math.max((hi0 - lo0) * 0.1, Math.abs(hi0) > 0 ? Math.abs(hi0) * 0.05 : 1);
    const lo = lo0 - pad, span = (hi0 + pad) - lo || 1, n = Math.max(values.length - 1, 1);
    let d = "";
    values.forEach((v, i) => { d += (i ? "L" : "M") + (i / n * 100).toFixed(1) + "," + (24 - (v - lo) / span * 24).toFixed(1); });
    const path = document.createElementNS(SVGNS, "path");
    path.setAttribute("d", d);
    path.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(path);
    return svg;
  }
  async function pollSparks() {
    try {
      const r = await fetch("/api/sparklines", { cache: "no-store" });
      if (!r.ok) return;
      const all = await r.json();
      for (const row of tbody.querySelectorAll("tr")) {
        const v = all[row.dataset.id];
        cell(row, "spark").replaceChildren(...(v && v.length ? [spark(v)] : []));
      }
    } catch (e) { /* next minute */ }
  }

  // The database cannot be written (a full disk): say so above everything else.
  function renderWriteFailure(f) {
    const banner = document.getElementById("write-failure");
    if (!banner) return;
    banner.hidden = !f;
    if (!f) return;
    banner.querySelector('[data-f="since"]').textContent = new Date(f.since).toLocaleString();
    banner.querySelector('[data-f="error"]').textContent = f.error;
  }

  function render(data) {
    skew = data.server_time - Date.now();
    renderWriteFailure(data.ingest && data.ingest.write_failure);
    const seen = new Set();
    byId = new Map(data.miners.map((m) => [String(m.id), m]));
    for (const m of data.miners) {
      seen.add(String(m.id));
      const row = rowFor(m);
      cell(row, "name").querySelector("a").textContent = m.name;
      renderFleet(row, m);
      const badge = document.createElement("span");
      // Identify reset this board on purpose: say so until it mines again.
      const status = identifying.has(m.id) ? "identifying" : m.status;
      badge.className = "badge status-" + status;
      badge.textContent = status.replace("_", " ");
      badge.title = identifying.has(m.id) ? "reset by Identify; back when it mines again" : m.status_detail || "";
      const words = fmt.reason(m);
      row.dataset.rank = fmt.problemRank(m);
      if (words) {
        // The reason inline, not only as a tooltip: a failure must say what it is.
        const why = document.createElement("small");
        why.className = "reason";
        why.textContent = " " + words;
        why.title = m.status_detail || (m.diagnosis && m.diagnosis.summary) || "";
        cell(row, "status").replaceChildren(badge, why);
      } else {
        cell(row, "status").replaceChildren(badge);
      }
      cell(row, "hashrate").textContent = fmt.hashrate(m.hashrate_khs);
      cell(row, "avg24").textContent = fmt.hashrate(m.hashrate_avg_24h);
      // A flat ~53 °C is the uncalibrated sensor of a classic ESP32, not a reading.
      cell(row, "temp").textContent = m.temperature_no_sensor ? "no sensor" : fmt.temp(m.temperature);
      cell(row, "shares").textContent = m.accepted + " / " + m.rejected;
      cell(row, "best").textContent = fmt.diff(m.best_diff);
      cell(row, "uptime").textContent = fmt.uptime(m.uptime_secs);
      const s = cell(row, "seen");
      s.dataset.ts = m.last_seen == null ? "" : m.last_seen;
    }
    for (const row of [...tbody.querySelectorAll("tr")]) if (!seen.has(row.dataset.id)) row.remove();
    applySort();
    applyDriftFilter();
    const t = data.totals;
    const set = (k, v) => { const el = document.querySelector('[data-t="' + k + '"]'); if (el) el.textContent = v; };
    set("online", t.online + " / " + t.miners);
    set("hashrate", fmt.hashrate(t.hashrate_khs));
    set("shares", t.shares);
    set("best", fmt.diff(t.best_diff));
    set("blocks", t.blocks_found);
    renderMarket(data, set);
  }

  // The pool cell links to the worker's page on the pool; the config cell says in sync /
  // drifted (which keys) / unknown, as src/web/pages.rs renders them first.
  function renderFleet(row, m) {
    const f = m.fleet || { drift: { state: "unknown" }, pool_page: null };
    const pool = cell(row, "pool");
    if (f.pool_page) {
      const a = document.createElement("a");
      a.className = "worker-link";
      a.href = f.pool_page;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.title = "this worker on the pool's own page";
      a.textContent = m.pool || "—";
      pool.replaceChildren(a);
    } else {
      pool.textContent = m.pool || "—";
    }
    const d = f.drift, span = document.createElement("span");
    span.className = "drift drift-" + d.state;
    if (d.state === "drifted") {
      span.textContent = "drifted: " + d.keys.join(", ");
      span.title = "differs from the desired state: " + d.keys.join(", ");
    } else if (d.state === "in_sync") {
      span.textContent = "in sync";
      span.title = "every desired key reads back as desired";
    } else {
      span.textContent = "unknown";
      span.title = "its configuration was never read";
    }
    cell(row, "config").replaceChildren(span);
    row.dataset.drift = d.state;
  }

  // The drift filter: only the miners in that state.
  const driftFilter = document.getElementById("drift-filter");
  function applyDriftFilter() {
    const want = driftFilter ? driftFilter.value : "";
    for (const row of tbody.querySelectorAll("tr")) row.hidden = !!want && row.dataset.drift !== want;
  }
  if (driftFilter) driftFilter.addEventListener("change", applyDriftFilter);

  // Price, network and odds: a value that is not live keeps its "as of" time and stale mark.
  function renderMarket(data, set) {
    const p = data.price, n = data.network;
    if (p) {
      set("price", fmt.price(p.price, p.currency));
      set("change", fmt.change(p.change_24h_percent));
      const ch = document.querySelector('[data-t="change"]');
      if (ch) ch.className = p.change_24h_percent == null ? "" : p.change_24h_percent < 0 ? "down" : "up";
      feedStatus("price", p);
    }
    if (n) {
      set("difficulty", n.difficulty == null ? "—" : fmt.diff(n.difficulty));
      set("net-hashrate", fmt.hashrateHs(n.hashrate_hs));
      set("height", n.block_height == null ? "—" : n.block_height);
      feedStatus("network", n);
    }
    const o = data.odds;
    set("odds-years", fmt.years(o ? o.expected_years_to_block : null));
    set("odds-day", fmt.chance(o ? o.chance_per_day : null));
    set("odds-year", fmt.chance(o ? o.chance_per_year : null));
  }

  function feedStatus(feed, v) {
    const q = (k) => document.querySelector('[data-t="' + feed + "-" + k + '"]');
    const asof = q("asof"), stale = q("stale"), err = q("error");
    if (asof) {
      asof.dataset.ts = v.fetched_at == null ? "" : v.fetched_at;
      asof.textContent = v.fetched_at == null ? "not fetched yet" : "as of " + fmt.clock(v.fetched_at);
    }
    if (stale) stale.hidden = !(v.stale && v.fetched_at != null);
    if (err) {
      err.hidden = !v.last_error;
      err.textContent = v.last_error ? "⚠ " + v.last_error : "";
      err.title = v.last_error || "";
    }
  }

  // Before the first poll, show the server-rendered fetch times in local time.
  for (const el of document.querySelectorAll('[data-t$="-asof"]')) {
    if (el.dataset.ts) el.textContent = "as of " + fmt.clock(Number(el.dataset.ts));
  }

  function tickAges() {
    for (const td of tbody.querySelectorAll('[data-k="seen"]')) {
      td.textContent = fmt.ago(td.dataset.ts ? Number(td.dataset.ts) : null);
    }
    const stale = document.getElementById("stale");
    if (stale) {
      const old = Date.now() - lastOk > 15000;
      stale.hidden = !old;
      // Everything the page can no longer vouch for goes grey, badges included.
      document.body.classList.toggle("is-stale", old);
      if (old) document.getElementById("stale-since").textContent = new Date(lastOk).toLocaleTimeString();
    }
  }

  function accept(data) {
    // An upgraded server may need new assets: reload once its version changes.
    if (version && data.version !== version) { location.reload(); return; }
    version = data.version;
    render(data);
    lastOk = Date.now();
    // The lottery panel and the celebration (lottery.js, celebrate.js) listen for this.
    document.dispatchEvent(new CustomEvent("shepherd:herd", { detail: data }));
  }

  // Live updates arrive over server-sent events; the browser reconnects by itself after a
  // restart. Polling stays as the fallback for whenever no event came lately (a proxy that
  // buffers streams, a browser without EventSource, a quiet herd).
  let lastEvent = 0;
  if (window.EventSource) {
    const events = new EventSource("/api/events");
    events.addEventListener("herd", (e) => {
      try { accept(JSON.parse(e.data)); lastEvent = Date.now(); } catch (err) { /* poll instead */ }
    });
  }

  // Miners being identified (GET /api/identifying), refreshed with every poll.
  let identifying = new Set();
  async function pollIdentifying() {
    try {
      const r = await fetch("/api/identifying", { cache: "no-store" });
      if (r.ok) identifying = new Set((await r.json()).miners);
    } catch (e) { /* next poll */ }
  }

  async function poll() {
    pollIdentifying();
    if (Date.now() - lastEvent < 5000) { tickAges(); return; }
    try {
      const r = await fetch("/api/herd_data", { cache: "no-store" });
      if (r.ok) accept(await r.json());
    } catch (e) { /* server restarting: keep the last values, marked stale */ }
    tickAges();
  }

  tickAges();
  poll();
  setInterval(poll, 2000);
  setInterval(pollSparks, 60000);
  setInterval(tickAges, 1000);
})();
