// Numbers as people read them, shared by the dashboard (app.js) and the kiosks (kiosk.js).
// The same rules as src/web/format.rs, which renders the first paint on the server; tests/format_js.rs
// runs both on the same inputs and fails when they differ.
(function () {
  "use strict";
  window.ShepherdFormat = {
    hashrate: (v) => v == null ? "—" : v >= 1000 ? (v / 1000).toFixed(2) + " MH/s" : v.toFixed(1) + " KH/s",
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
    luck: (v) => v == null || !isFinite(v) || v < 0 ? "—" : v < 1 ? v.toFixed(2) + "×" : v < 10 ? v.toFixed(1) + "×" : Math.round(v) + "×",
    flips: (v) => v == null || !isFinite(v) ? "—" : v.toFixed(1),
    change: (v) => v == null ? "—" : v < 0 ? "−" + (-v).toFixed(2) + " %" : "+" + v.toFixed(2) + " %",
  };
})();
