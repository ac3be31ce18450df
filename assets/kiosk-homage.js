// The herd as the NerdMiner's own screen shows one miner: a 320x170 frame (the T-Display S3
// panel) drawn at native size and blown up with square pixels by CSS. Black panel, white
// figures, Bitcoin-orange accents, the big hashrate, the field list down the left.
(function () {
  "use strict";
  const K = window.Kiosk;
  const c = document.getElementById("k-screen");
  const g = c.getContext("2d");
  g.imageSmoothingEnabled = false;
  const ORANGE = "#f7931a", WHITE = "#ffffff", GREY = "#8c8c8c", PANEL = "#1a1423";
  // The panel has no anti-aliasing: every pixel is snapped to one of these after drawing.
  const PALETTE = [[0, 0, 0], [255, 255, 255], [247, 147, 26], [140, 140, 140], [26, 20, 35]];

  function snap() {
    const img = g.getImageData(0, 0, 320, 170), px = img.data;
    for (let i = 0; i < px.length; i += 4) {
      let best = 0, bestD = Infinity;
      for (let k = 0; k < PALETTE.length; k++) {
        const p = PALETTE[k], dr = px[i] - p[0], dg = px[i + 1] - p[1], db = px[i + 2] - p[2];
        const dist = dr * dr + dg * dg + db * db;
        if (dist < bestD) { bestD = dist; best = k; }
      }
      const p = PALETTE[best];
      px[i] = p[0]; px[i + 1] = p[1]; px[i + 2] = p[2]; px[i + 3] = 255;
    }
    g.putImageData(img, 0, 0);
  }
  let d = null, templates = null;

  function text(s, x, y, size, color, align) {
    g.font = "bold " + size + "px monospace";
    g.fillStyle = color;
    g.textAlign = align || "left";
    g.textBaseline = "top";
    g.fillText(s, x, y);
  }

  function draw() {
    paint();
    snap();
  }

  function paint() {
    g.fillStyle = "#000";
    g.fillRect(0, 0, 320, 170);
    // Title bar, as the firmware's background image has it.
    g.fillStyle = PANEL;
    g.fillRect(0, 0, 320, 18);
    g.fillStyle = ORANGE;
    g.fillRect(0, 18, 320, 2);
    text("NerdMiner", 6, 3, 12, ORANGE);
    text("HERD", 82, 3, 12, WHITE);
    const now = new Date();
    text(now.toTimeString().slice(0, 5), 314, 3, 12, WHITE, "right");
    if (!d) { text("waiting for data…", 160, 80, 12, GREY, "center"); return; }
    const t = d.totals, miners = d.miners;
    let temp = null, up = null;
    for (const m of miners) {
      if (m.temperature != null) temp = temp == null ? m.temperature : Math.max(temp, m.temperature);
      if (m.uptime_secs != null) up = up == null ? m.uptime_secs : Math.max(up, m.uptime_secs);
    }
    const rows = [
      ["Miners", t.online + "/" + t.miners],
      ["Shares", String(t.shares)],
      ["Best diff", K.fmt.diff(t.best_diff)],
      ["Templates", templates == null ? "--" : String(templates)],
      ["Valid blocks", String(t.blocks_found)],
      ["Temp", temp == null ? "--" : Math.round(temp) + "C"],
      ["Uptime", up == null ? "--" : K.fmt.uptime(up)],
    ];
    rows.forEach(([k, v], i) => {
      const y = 25 + i * 20;
      text(k, 6, y, 8, GREY);
      text(v, 6, y + 8, 11, WHITE);
    });
    g.fillStyle = ORANGE;
    g.fillRect(128, 28, 2, 130);
    const hr = t.hashrate_khs || 0;
    const big = hr >= 1000 ? (hr / 1000).toFixed(2) : hr.toFixed(2);
    text(big, 226, 52, big.length > 6 ? 36 : 44, WHITE, "center");
    text(hr >= 1000 ? "MH/s" : "KH/s", 226, 102, 16, ORANGE, "center");
    const price = d.price && d.price.price != null ? K.fmt.price(d.price.price, d.price.currency) : "--";
    text("BTC " + price, 226, 124, 11, GREY, "center");
    // The herd's best share and how many coin flips a block still is.
    const l = d.lottery || {};
    const flips = l.coin_flips == null ? "--" : l.coin_flips.toFixed(1);
    text("Best " + K.fmt.diff(l.best_share) + "  " + flips + " flips", 226, 146, 10, ORANGE, "center");
  }

  K.onData(function (data) { d = data; draw(); });
  // Block templates are not in herd_data (only boards without a display print them).
  async function fetchTemplates() {
    try {
      const r = await K.api("/api/block_templates");
      if (r.ok) { templates = (await r.json()).block_templates; draw(); }
    } catch (e) { /* keep the last figure */ }
  }
  fetchTemplates();
  setInterval(fetchTemplates, 15000);
  draw();
  setInterval(draw, 10000);
})();
