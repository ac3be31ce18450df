// Big clock (ticks locally every second) and the herd/price figures from the poller.
(function () {
  "use strict";
  const K = window.Kiosk;
  const time = document.getElementById("k-time"), date = document.getElementById("k-date");
  // Hours and minutes fill the screen; seconds and AM/PM ride smaller beside them.
  const parts = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  function span(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
  function tick() {
    const now = new Date();
    const v = {};
    for (const p of parts.formatToParts(now)) v[p.type] = p.value;
    const main = v.hour + ":" + v.minute, sec = v.second || "", ampm = v.dayPeriod || "";
    const small = document.createElement("span");
    small.className = "k-small";
    small.append(span("k-sec", sec), span("k-ampm", ampm));
    time.replaceChildren(span("k-hm", main), small);
    date.textContent = now.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
  }
  tick();
  setInterval(tick, 1000);
  K.onData(function (d) {
    const p = d.price, t = d.totals;
    K.set("price", K.fmt.price(p.price, p.currency));
    K.set("change", K.fmt.change(p.change_24h_percent));
    const ch = document.querySelector('[data-f="change"]');
    if (ch) ch.className = p.change_24h_percent == null ? "" : p.change_24h_percent < 0 ? "down" : "up";
    K.set("price-asof", p.fetched_at == null ? "not fetched yet" : "as of " + K.fmt.time(p.fetched_at) + (p.stale ? " (stale)" : ""));
    K.set("hashrate", K.fmt.hashrate(t.hashrate_khs));
    K.set("online", t.online + " / " + t.miners);
    K.set("best", K.fmt.diff(t.best_diff));
    const l = d.lottery;
    K.set("bestline", l.best_share == null ? "No best share recorded yet"
      : "Herd best share " + K.fmt.diff(l.best_share) + (l.coin_flips == null ? "" : " · " + l.coin_flips.toFixed(1) + " coin flips from a block"));
  });
})();
