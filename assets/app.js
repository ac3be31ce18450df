// Live dashboard: polls /api/herd_data and updates the table in place. Text goes through
// textContent only, so nothing from the server is ever parsed as HTML.
(function () {
  "use strict";
  const table = document.getElementById("herd");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  let lastOk = Date.now();
  let skew = Number(table.dataset.serverTime || Date.now()) - Date.now();

  const fmt = {
    hashrate: (v) => v == null ? "—" : v >= 1000 ? (v / 1000).toFixed(2) + " MH/s" : v.toFixed(1) + " KH/s",
    diff: (v) => {
      if (v == null) return "not reported";
      const s = ["", "K", "M", "G", "T", "P", "E"];
      let i = 0;
      while (v >= 1000 && i < s.length - 1) { v /= 1000; i++; }
      return i === 0 ? v.toFixed(4) : v.toFixed(2) + s[i];
    },
    temp: (v) => v == null ? "not reported" : Math.round(v) + " °C",
    uptime: (s) => {
      if (s == null) return "—";
      const d = Math.floor(s / 86400), r = s % 86400;
      const p = (n) => String(n).padStart(2, "0");
      const hms = p(Math.floor(r / 3600)) + ":" + p(Math.floor(r % 3600 / 60)) + ":" + p(r % 60);
      return d > 0 ? d + "d " + hms : hms;
    },
    ago: (ts) => {
      if (ts == null) return "never";
      const s = Math.max(0, Math.round((Date.now() + skew - ts) / 1000));
      return s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min ago" : Math.floor(s / 3600) + " h ago";
    },
  };

  function cell(row, key) { return row.querySelector('[data-k="' + key + '"]'); }

  function rowFor(m) {
    let row = tbody.querySelector('tr[data-id="' + m.id + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = m.id;
      for (const k of ["name", "status", "hashrate", "avg24", "temp", "shares", "best", "uptime", "seen"]) {
        const td = document.createElement("td");
        td.dataset.k = k;
        if (!["name", "status", "seen"].includes(k)) td.className = "num";
        row.appendChild(td);
      }
      tbody.appendChild(row);
    }
    return row;
  }

  function render(data) {
    skew = data.server_time - Date.now();
    const seen = new Set();
    for (const m of data.miners) {
      seen.add(String(m.id));
      const row = rowFor(m);
      const nameCell = cell(row, "name");
      let link = nameCell.querySelector("a");
      if (!link) {
        link = document.createElement("a");
        nameCell.textContent = "";
        nameCell.appendChild(link);
      }
      link.href = "/miners/manage/" + m.id;
      link.textContent = m.name;
      const badge = document.createElement("span");
      badge.className = "badge status-" + m.status;
      badge.textContent = m.status.replace("_", " ");
      if (m.status_detail) badge.title = m.status_detail;
      cell(row, "status").replaceChildren(badge);
      cell(row, "hashrate").textContent = fmt.hashrate(m.hashrate_khs);
      cell(row, "avg24").textContent = fmt.hashrate(m.hashrate_avg_24h);
      cell(row, "temp").textContent = fmt.temp(m.temperature);
      cell(row, "shares").textContent = m.accepted + " / " + m.rejected;
      cell(row, "best").textContent = fmt.diff(m.best_diff);
      cell(row, "uptime").textContent = fmt.uptime(m.uptime_secs);
      const s = cell(row, "seen");
      s.dataset.ts = m.last_seen == null ? "" : m.last_seen;
    }
    for (const row of [...tbody.querySelectorAll("tr")]) if (!seen.has(row.dataset.id)) row.remove();
    const t = data.totals;
    const set = (k, v) => { const el = document.querySelector('[data-t="' + k + '"]'); if (el) el.textContent = v; };
    set("online", t.online + " / " + t.miners);
    set("hashrate", fmt.hashrate(t.hashrate_khs));
    set("shares", t.shares);
    set("best", fmt.diff(t.best_diff));
    set("blocks", t.blocks_found);
  }

  function tickAges() {
    for (const td of tbody.querySelectorAll('[data-k="seen"]')) {
      td.textContent = fmt.ago(td.dataset.ts ? Number(td.dataset.ts) : null);
    }
    const stale = document.getElementById("stale");
    if (stale) {
      const old = Date.now() - lastOk > 15000;
      stale.hidden = !old;
      if (old) document.getElementById("stale-since").textContent = new Date(lastOk).toLocaleTimeString();
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/herd_data", { cache: "no-store" });
      if (r.ok) { render(await r.json()); lastOk = Date.now(); }
    } catch (e) { /* server restarting: keep the last values, marked stale */ }
    tickAges();
  }

  tickAges();
  setInterval(poll, 2000);
  setInterval(tickAges, 1000);
})();
