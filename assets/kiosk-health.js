// Every miner as a tile. The grid is sized so all tiles fit the screen: columns follow the
// screen's aspect ratio, the font follows the tile size.
(function () {
  "use strict";
  const K = window.Kiosk;
  const grid = document.getElementById("k-grid");
  // Columns that fill the screen: few empty cells, tiles a little wider than tall
  // (8 miners on 16:9 are 4×2, on a phone 2×4).
  function columns(n, w, h) {
    let best = 1, score = Infinity;
    for (let c = 1; c <= n; c++) {
      const r = Math.ceil(n / c), empty = c * r - n;
      const s = empty * 0.5 + Math.abs(Math.log((w / c) / (h / r) / 1.6));
      if (s < score - 1e-9) { score = s; best = c; }
    }
    return best;
  }
  function layout(n) {
    const w = grid.clientWidth || innerWidth, h = grid.clientHeight || innerHeight;
    const cols = columns(n, w, h);
    const rows = Math.max(1, Math.ceil(n / cols));
    grid.style.setProperty("--cols", cols);
    grid.style.gridTemplateRows = "repeat(" + rows + ", minmax(0, 1fr))";
    const tileH = h / rows, tileW = w / cols;
    grid.style.setProperty("--fs", Math.max(10, Math.min(tileH / 3.2, tileW / 7)) + "px");
  }
  function tile(m) {
    let el = grid.querySelector('[data-id="' + m.id + '"]');
    if (!el) {
      el = document.createElement("div");
      el.dataset.id = m.id;
      for (const c of ["k-name", "k-figure", "k-state"]) {
        const d = document.createElement("div");
        d.className = c;
        el.appendChild(d);
      }
    }
    el.className = "k-tile status-" + m.status;
    el.children[0].textContent = m.name;
    el.children[1].textContent = K.fmt.hashrate(m.hashrate_khs) + " · " + K.fmt.temp(m.temperature);
    const why = K.fmt.reason(m);
    el.children[2].textContent = m.status.replace("_", " ") + (why ? " — " + why : "");
    if (m.status_detail) el.title = m.status_detail;
    return el;
  }
  K.onData(function (d) {
    // Problems first: the dead miner is the first tile, not one among many.
    const tiles = K.fmt.problemsFirst(d.miners).map(tile);
    grid.replaceChildren(...tiles);
    layout(Math.max(tiles.length, 1));
    K.set("online", d.totals.online + " / " + d.totals.miners + " online");
    K.set("hashrate", K.fmt.hashrate(d.totals.hashrate_khs));
  });
  layout(Math.max(grid.children.length, 1));
  addEventListener("resize", () => layout(Math.max(grid.children.length, 1)));
})();
