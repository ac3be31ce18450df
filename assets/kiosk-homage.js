// The herd as a NerdMiner v2 shows itself on its T-Display: a 320x170 black screen with a
// yellow and a cyan slanted panel, the pickaxe mark, the hashrate as a 7-segment face black on
// yellow, stats on the right, a dotted VALID BLOCKS box and a grey top strip with temperature
// and time. Like the board it cycles screens (miner, clock, global stats, price); a tap, a
// click or a key moves on, as the board's button does. Drawing primitives: assets/nerd-draw.js.
(function () {
  "use strict";
  const K = window.Kiosk, D = window.NerdDraw;
  const W = 320, H = 170;
  const c = document.getElementById("k-screen");
  const g = c.getContext("2d");
  g.imageSmoothingEnabled = false;
  const BLACK = "#000000", YELLOW = "#ffd21f", CYAN = "#2fd3e6", GREY = "#b4b4b4", LIGHT = "#dedbde",
    DIM = "#7c7c7c", RED = "#ff3b30";
  const PALETTE = [[0, 0, 0], [255, 210, 31], [47, 211, 230], [180, 180, 180], [222, 219, 222], [124, 124, 124], [255, 59, 48]];
  const SCREENS = ["miner", "clock", "global", "price"];
  const CYCLE_MS = 15000;
  let d = null, screen = 0, shownAt = Date.now();

  // Whole-number scaling: 2x on 800x480, 6x on 1920x1080, square pixels.
  function fit() {
    const k = D.wholeScale(W, H, innerWidth, innerHeight);
    c.style.width = W * k + "px";
    c.style.height = H * k + "px";
  }

  function hhmm(date) { return String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0"); }

  // The herd's figures as the board's strings.
  function figures() {
    const t = d.totals;
    let temp = null, up = null;
    for (const m of d.miners) {
      if (m.temperature != null && !m.temperature_no_sensor) temp = temp == null ? m.temperature : Math.max(temp, m.temperature);
      if (m.uptime_secs != null) up = up == null ? m.uptime_secs : Math.max(up, m.uptime_secs);
    }
    // KH/s for NerdMiners, up to TH/s and beyond once Bitaxes join: the face keeps its digits.
    let hr = t.hashrate_khs || 0, unit = 0;
    const units = ["KH/S", "MH/S", "GH/S", "TH/S", "PH/S", "EH/S"];
    while (hr >= 1000 && unit < units.length - 1) { hr /= 1000; unit++; }
    return {
      hashrate: hr.toFixed(2), unit: units[unit],
      temp: temp == null ? "--" : Math.round(temp) + "°C",
      best: t.best_diff == null ? "--" : K.fmt.diff(t.best_diff),
      shares: String(t.shares), online: t.online + "/" + t.miners, allOnline: t.online === t.miners,
      uptime: up == null ? "--" : K.fmt.uptime(up), blocks: String(t.blocks_found),
      height: d.network && d.network.block_height != null ? String(d.network.block_height) : "--",
      price: d.price && d.price.price != null ? "$" + Math.round(d.price.price).toLocaleString("en-US") : "--",
    };
  }

  // The grey strip along the top with black text, its left end slanted.
  function topStrip(left, right) {
    D.panel(g, [[136, 0], [W, 0], [W, 13], [146, 13]], GREY);
    if (left) D.text(g, left, 236, 3, 1, BLACK, "right");
    if (right) D.text(g, right, 315, 3, 1, BLACK, "right");
  }

  function logo() {
    D.pickaxe(g, 4, 4, YELLOW, LIGHT);
    D.text(g, "NERD", 28, 4, 2, YELLOW);
    D.text(g, "MINER²", 28, 21, 1, LIGHT);
    D.text(g, "HERD", 70, 21, 1, CYAN);
  }

  // The yellow panel, bottom left, with a 7-segment figure black on yellow.
  function yellowPanel(value, unit, label, h) {
    D.panel(g, [[0, 88], [150, 88], [128, H], [0, H]], YELLOW);
    D.text(g, label, 6, 93, 1, BLACK);
    const big = D.sevenFit(value, h, 112);
    D.seven(g, value, 120, 106 + Math.round((h - big) / 2), big, BLACK, "right");
    D.text(g, unit, 6, 160, 1, BLACK);
  }

  // The cyan panel, bottom right.
  function cyanPanel(label, value) {
    D.panel(g, [[162, 132], [W, 132], [W, H], [150, H]], CYAN);
    D.text(g, label, 162, 137, 1, BLACK);
    D.seven(g, value, 314, 146, D.sevenFit(value, 18, 150), BLACK, "right");
  }

  function stat(y, label, value, color) {
    D.text(g, label, 142, y + 3, 1, DIM);
    const scale = D.textWidth(value, 2) <= 258 - 186 ? 2 : 1;
    D.text(g, value, 186, y + (scale === 2 ? 0 : 3), scale, color || LIGHT);
  }

  function minerScreen(f) {
    topStrip(f.temp, hhmm(new Date()));
    logo();
    D.text(g, "ONLINE " + f.online, 6, 42, 1, f.allOnline ? LIGHT : RED);
    stat(22, "BEST", f.best);
    stat(46, "SHARES", f.shares);
    stat(70, "MINERS", f.online, f.allOnline ? LIGHT : RED);
    // VALID BLOCKS in its dotted box.
    D.dotted(g, 266, 18, 50, 62, LIGHT);
    D.text(g, "VALID", 291, 23, 1, LIGHT, "center");
    D.text(g, "BLOCKS", 291, 32, 1, LIGHT, "center");
    D.text(g, f.blocks, 291, 50, 3, YELLOW, "center");
    // The herd's best share and how many coin flips a block still is (the lottery figures).
    const l = d.lottery || {};
    const flips = l.coin_flips == null ? "--" : l.coin_flips.toFixed(1);
    D.text(g, "SHARE " + K.fmt.diff(l.best_share) + " " + flips + " FLIPS", 158, 96, 1, YELLOW);
    D.text(g, "UPTIME", 158, 108, 1, DIM);
    D.text(g, f.uptime, 315, 108, 1, LIGHT, "right");
    yellowPanel(f.hashrate, f.unit, "HASHRATE", 40);
    cyanPanel("MINERS", f.online.replace("/", "-"));
  }

  function clockScreen(f) {
    topStrip("BTC " + f.price, null);
    logo();
    const now = new Date();
    D.seven(g, hhmm(now), 232, 34, 48, LIGHT, "center");
    D.text(g, now.toDateString(), 232, 90, 1, DIM, "center");
    yellowPanel(f.hashrate, f.unit, "HASHRATE", 32);
    cyanPanel("BLOCK", f.height);
  }

  function globalScreen(f) {
    topStrip("BTC " + f.price, hhmm(new Date()));
    logo();
    const n = d.network || {};
    D.text(g, "BLOCK HEIGHT", 6, 44, 1, DIM);
    D.seven(g, f.height, 6, 56, D.sevenFit(f.height, 28, 180), LIGHT, "left");
    D.text(g, "DIFFICULTY", 200, 26, 1, DIM);
    D.text(g, n.difficulty == null ? "--" : K.fmt.diff(n.difficulty), 315, 38, 1, LIGHT, "right");
    D.text(g, "NETWORK", 200, 56, 1, DIM);
    D.text(g, n.hashrate_hs == null ? "--" : (n.hashrate_hs / 1e18).toFixed(1) + " EH/S", 315, 68, 1, LIGHT, "right");
    // Blocks left to the next difficulty adjustment, as a bar.
    D.panel(g, [[0, 132], [150, 132], [140, H], [0, H]], YELLOW);
    D.text(g, "NEXT ADJUSTMENT", 6, 137, 1, BLACK);
    if (n.block_height != null) {
      const into = n.block_height % 2016;
      D.rect(g, 6, 150, 130, 14, BLACK);
      D.rect(g, 7, 151, Math.round(128 * into / 2016), 12, YELLOW);
      D.text(g, (2016 - into) + " LEFT", 72, 154, 1, into > 1008 ? BLACK : LIGHT, "center");
    }
    cyanPanel("HERD " + f.unit, f.hashrate);
  }

  function priceScreen(f) {
    topStrip(null, hhmm(new Date()));
    logo();
    const p = d.price || {};
    D.text(g, "BTC PRICE", 232, 40, 1, DIM, "center");
    const scale = D.textWidth(f.price, 3) <= 150 ? 3 : 2;
    D.text(g, f.price, 232, 54, scale, LIGHT, "center");
    const ch = p.change_24h_percent;
    if (ch != null) D.text(g, K.fmt.change(ch) + " 24H", 232, 84, 1, ch < 0 ? RED : CYAN, "center");
    if (p.stale) D.text(g, "STALE", 232, 96, 1, RED, "center");
    yellowPanel(f.hashrate, f.unit, "HASHRATE", 32);
    cyanPanel("BLOCK", f.height);
  }

  function draw() {
    if (Date.now() - shownAt >= CYCLE_MS) { screen = (screen + 1) % SCREENS.length; shownAt = Date.now(); }
    D.rect(g, 0, 0, W, H, BLACK);
    if (!d) {
      logo();
      D.text(g, "WAITING FOR DATA", 160, 80, 1, LIGHT, "center");
    } else {
      const f = figures();
      ({ miner: minerScreen, clock: clockScreen, global: globalScreen, price: priceScreen })[SCREENS[screen]](f);
    }
    D.snap(g, W, H, PALETTE);
    c.dataset.screen = SCREENS[screen];
  }

  function next() { screen = (screen + 1) % SCREENS.length; shownAt = Date.now(); draw(); }
  // The board's button: a tap, a click or any key shows the next screen.
  addEventListener("pointerdown", next);
  addEventListener("keydown", next);
  addEventListener("resize", fit);
  K.onData(function (data) { d = data; draw(); });
  fit();
  draw();
  setInterval(draw, 1000);
})();
