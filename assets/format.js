// Numbers as people read them, shared by the dashboard (app.js) and the kiosks (kiosk.js).
// The same rules as src/web/format.rs, which renders the first paint on the server; tests/format_js.rs
// runs both on the same inputs and fails when they differ.
(function () {
  "use strict";
  window.ShepherdFormat = {
    // Stored in KH/s: a NerdMiner reads KH/s, a Bitaxe TH/s, in the same column.
    hashrate: (v) => {
      if (v == null) return "—";
      if (v < 1000) return v.toFixed(1) + " KH/s";
      for (const unit of ["MH/s", "GH/s", "TH/s", "PH/s", "EH/s"]) {
        v /= 1000;
        if (v < 1000) return v.toFixed(2) + " " + unit;
      }
      return (v / 1000).toFixed(2) + " ZH/s";
    },
    diff: (v) => {
      if (v == null) return "not reported";
      const s = ["", "K", "M", "G", "T", "P", "E"];
      let i = 0;
      while (v >= 1000 && i < s.length - 1) { v /= 1000; i++; }
      return i === 0 ? v.toFixed(4) : v.toFixed(2) + s[i];
    },
    // Boards with a display never print a temperature: say so, never 0.
    temp: (v, missing) => v == null ? (missing || "not reported") : Math.round(v) + " °C",
    uptime: (s) => {
      if (s == null) return "—";
      const d = Math.floor(s / 86400), r = s % 86400, p = (n) => String(n).padStart(2, "0");
      return (d > 0 ? d + "d " : "") + p(Math.floor(r / 3600)) + ":" + p(Math.floor(r % 3600 / 60)) + ":" + p(r % 60);
    },
    price: (v, cur) => {
      if (v == null || !isFinite(v)) return "—";
      if (v < 100) return v.toFixed(2) + " " + cur;
      return String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ",") + " " + cur;
    },
    // The verdicts worth words beside a badge (src/web/pages.rs why_words).
    whyWords: (m) => ({
      worker_rejected: "pool rejects worker", mining_unreported: "mining, hashrate not reported",
      setup_portal: "setup portal", no_wifi: "no Wi-Fi", pool_unreachable: "pool unreachable",
      not_subscribed: "not subscribed", not_hashing: "not hashing", starting: "starting",
    })[m.diagnosis && m.diagnosis.verdict] || null,
    // Most urgent first (src/web/pages.rs rank_of): broken, stalled, not mining, fine.
    problemRank: (m) => {
      if (m.status === "offline" || m.status === "error") return 0;
      if (m.status === "stalled" || m.status === "no_data") return 1;
      return window.ShepherdFormat.whyWords(m) ? 2 : 3;
    },
    // A link detail without its leading device path (src/web/pages.rs short_detail).
    shortDetail: (d) => {
      const m = /^\/\S* (.*)$/s.exec(d);
      return m ? "port " + m[1] : d;
    },
    reason: (m) => {
      const f = window.ShepherdFormat;
      return f.whyWords(m) || (f.problemRank(m) < 3 && m.status_detail ? f.shortDetail(m.status_detail) : null);
    },
    problemsFirst: (miners) => miners.slice().sort((a, b) => {
      const f = window.ShepherdFormat, d = f.problemRank(a) - f.problemRank(b);
      return d || a.name.toLowerCase().localeCompare(b.name.toLowerCase());
    }),
    luck: (v) => v == null || !isFinite(v) || v < 0 ? "—" : v < 1 ? v.toFixed(2) + "×" : v < 10 ? v.toFixed(1) + "×" : Math.round(v) + "×",
    flips: (v) => v == null || !isFinite(v) ? "—" : v.toFixed(1),
    change: (v) => v == null ? "—" : v < 0 ? "−" + (-v).toFixed(2) + " %" : "+" + v.toFixed(2) + " %",
  };
})();
