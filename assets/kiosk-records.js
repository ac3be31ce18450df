// The herd's leaderboard across a room: best share, coin flips to a block, the log-scale bar
// and the top 10, refreshed from /api/herd_data by the kiosk poller.
(function () {
  "use strict";
  const K = window.Kiosk;
  const fill = document.getElementById("k-rec-fill"), list = document.getElementById("k-rec-list");
  function bar(p) { fill.style.width = (Math.max(0, Math.min(1, p || 0)) * 100).toFixed(2) + "%"; }
  bar(parseFloat(fill.dataset.p));
  function when(ts) {
    return new Date(ts).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }
  K.onData(function (d) {
    const l = d.lottery;
    K.set("rec-best", K.fmt.diff(l.best_share));
    K.set("rec-flips", l.coin_flips == null ? "—" : l.coin_flips.toFixed(1));
    bar(l.progress_to_block);
    list.replaceChildren();
    for (const r of l.records) {
      const li = document.createElement("li");
      for (const [cls, text] of [["k-rec-diff", K.fmt.diff(r.difficulty)], ["k-rec-miner", r.miner], ["k-rec-when", when(r.at)]]) {
        const s = document.createElement("span");
        s.className = cls;
        s.textContent = text;
        li.appendChild(s);
      }
      list.appendChild(li);
    }
    if (!l.records.length) {
      const li = document.createElement("li");
      li.className = "k-rec-empty";
      li.textContent = "No shares recorded yet";
      list.appendChild(li);
    }
  });
})();
