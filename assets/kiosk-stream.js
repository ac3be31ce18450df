// "Matrix" rain of live data: each column drops the characters of a real recent log line
// (shares, hashes, pool and Wi-Fi events) one by one. Light on a Pi: requestAnimationFrame
// capped at FPS, one glyph per column per frame, typed arrays allocated once per resize.
(function () {
  "use strict";
  const K = window.Kiosk;
  const FPS = 15, FRAME_MS = 1000 / FPS, MAX_LINES = 200;
  const canvas = document.getElementById("k-rain");
  const g = canvas.getContext("2d", { alpha: false });
  let size = 16, cols = 0, rows = 0;
  let y = new Float32Array(0), pos = new Int32Array(0), src = [];
  const lines = ["NerdMiner", ">>> Completed", "mining.submit", "TX SHARE", "The Shepherd"];
  let next = 0;
  const lastSeen = new Map();

  function resize() {
    const w = innerWidth, h = innerHeight;
    canvas.width = w;
    canvas.height = h;
    size = Math.max(12, Math.round(Math.min(w, h) / 30));
    cols = Math.ceil(w / size);
    rows = Math.ceil(h / size);
    y = new Float32Array(cols);
    pos = new Int32Array(cols);
    src = new Array(cols);
    for (let i = 0; i < cols; i++) { y[i] = -Math.floor(Math.random() * rows); src[i] = pick(); }
    g.fillStyle = "#000";
    g.fillRect(0, 0, w, h);
  }

  function pick() {
    next = (next + 1) % lines.length;
    return lines[next];
  }

  let last = 0;
  function frame(now) {
    requestAnimationFrame(frame);
    if (now - last < FRAME_MS) return;
    last = now;
    g.fillStyle = "rgba(0,0,0,0.12)";
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.font = size + "px ui-monospace, monospace";
    g.textBaseline = "top";
    for (let i = 0; i < cols; i++) {
      if (y[i] >= 0) {
        const s = src[i];
        const ch = s.charAt(pos[i] % s.length);
        g.fillStyle = pos[i] === 0 ? "#d8ffd8" : (s.indexOf("share") >= 0 || s.indexOf("SHARE") >= 0) ? "#f7931a" : "#35c46f";
        g.fillText(ch, i * size, y[i] * size);
        pos[i]++;
      }
      y[i]++;
      if (y[i] > rows || (y[i] >= 0 && pos[i] >= src[i].length && Math.random() < 0.05)) {
        y[i] = -Math.floor(Math.random() * rows / 2);
        pos[i] = 0;
        src[i] = pick();
      }
    }
  }

  // New log lines, a few miners per poll in turn (a big herd must not mean a burst of
  // requests every few seconds); only lines not seen before.
  let turn = 0;
  async function feed(d) {
    const n = d.miners.length, batch = [];
    for (let k = 0; k < Math.min(3, n); k++) batch.push(d.miners[(turn + k) % n]);
    turn = n ? (turn + batch.length) % n : 0;
    for (const m of batch) {
      try {
        const r = await K.api("/api/miners/" + encodeURIComponent(m.id) + "/logs?limit=20");
        if (!r.ok) continue;
        const body = await r.json();
        const seen = lastSeen.get(m.id) || 0;
        for (const l of body.lines.slice().reverse()) {
          if (l.id <= seen) continue;
          const text = l.line.trim();
          if (text) lines.push(m.name + " " + text);
        }
        if (body.lines.length) lastSeen.set(m.id, body.lines[0].id);
      } catch (e) { /* server away: keep raining what we have */ }
    }
    if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
  }
  let feeding = false;
  K.onData(function (d) {
    if (feeding) return;
    feeding = true;
    feed(d).finally(() => { feeding = false; });
  });

  addEventListener("resize", resize);
  resize();
  requestAnimationFrame(frame);
})();
