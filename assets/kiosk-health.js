// Every miner as a tile. The grid is sized so all tiles fit the screen: columns follow the
// screen's aspect ratio, the font follows the tile size.
(function () {
  "use strict";
  const K = window.Kiosk;
  const grid = document.getElementById("k-grid");
  function layout(n) {
    const w = grid.clientWidth || innerWidth, h = grid.clientHeight || innerHeight;
    const cols = Math.max(1, Math.min(n, Math.round(Math.sqrt(n * w / h * 0.6)) || 1));
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
    el.children[2].textContent = m.status.replace("_", " ");
    if (m.status_detail) el.title = m.status_detail;
    return el;
  }
  K.onData(function (d) {
    const tiles = d.miners.map(tile);
    grid.replaceChildren(...tiles);
    layout(Math.max(tiles.length, 1));
    K.set("online", d.totals.online + " / " + d.totals.miners + " online");
    K.set("hashrate", K.fmt.hashrate(d.totals.hashrate_khs));
  });
  layout(Math.max(grid.children.length, 1));
  addEventListener("resize", () => layout(Math.max(grid.children.length, 1)));
})();
