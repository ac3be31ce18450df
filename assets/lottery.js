// The dashboard's lottery cards (herd best share, coin flips to a block, luck), kept live from
// the herd document app.js hands out with the "shepherd:herd" event.
(function () {
  "use strict";
  const F = window.ShepherdFormat;
  const fill = document.getElementById("flips-fill");
  function bar(p) { if (fill) fill.style.width = (Math.max(0, Math.min(1, p || 0)) * 100).toFixed(2) + "%"; }
  function set(key, text) {
    for (const el of document.querySelectorAll('[data-l="' + key + '"]')) el.textContent = text;
  }
  if (fill) bar(parseFloat(fill.dataset.p));
  document.addEventListener("shepherd:herd", function (e) {
    const d = e.detail, l = d.lottery;
    if (!l) return;
    set("best", F.diff(l.best_share));
    const top = l.records[0];
    set("best-by", top ? top.miner + " · " + new Date(top.at).toLocaleString() : "none recorded yet");
    set("flips", F.flips(l.coin_flips));
    bar(l.progress_to_block);
    set("luck-24h", F.luck(l.luck_24h.luck));
    set("luck-30d", F.luck(l.luck_30d.luck));
    set("luck-all", F.luck(l.luck_all.luck));
    const at = d.network && d.network.fetched_at;
    set("odds-asof", at == null ? "never (not fetched yet)" : new Date(at).toLocaleString() + (d.network.stale ? " (stale)" : ""));
  });
})();
