// Digital rain of live data. Every column falls from its own head at its own speed: a bright
// head, a green tail fading behind it, glyphs in the tail flickering. The columns spell real
// recent log lines of the herd. Orange is kept for real events only (a share accepted, a new
// best difficulty, a block), seen as changes between two herd documents: the event's column
// turns orange and a caption names the miner for a few seconds.
// Light on a Pi: requestAnimationFrame capped at FPS, arrays allocated once per resize.
(function () {
  "use strict";
  const K = window.Kiosk;
  const FPS = 20, FRAME_MS = 1000 / FPS, MAX_LINES = 200, EVENT_MS = 4000;
  const GREEN = "#35c46f", HEAD = "#e8ffe8", ORANGE = "#f7931a";
  const GLYPHS = "0123456789ABCDEF<>=+*:.#$%@";
  const canvas = document.getElementById("k-rain");
  const g = canvas.getContext("2d", { alpha: false });
  const caption = document.getElementById("k-event");
  let size = 16, cols = 0, rows = 0;
  // Per column: head row (fractional), rows per frame, the text it spells, how far along,
  // the row last drawn, and whether it carries an event.
  let head = new Float32Array(0), speed = new Float32Array(0), done = new Int32Array(0);
  let drawn = new Int32Array(0), text = [], hot = [];
  const lines = ["NerdMiner", "The Shepherd", "hashing", "mining.notify", "stratum", "nonce"];
  let next = 0;
  const events = [];

  function rand(a, b) { return a + Math.random() * (b - a); }

  function restart(i, initial) {
    // A new drop starts above the screen at a random height, so no two line up.
    head[i] = initial ? rand(-rows, rows) : -rand(1, rows * 0.8);
    speed[i] = rand(0.25, 1.1);
    done[i] = 0;
    drawn[i] = Math.floor(head[i]) - 1;
    const ev = events.shift();
    if (ev) { text[i] = ev.text; hot[i] = true; speed[i] = 0.9; } else { text[i] = pick(); hot[i] = false; }
  }

  function resize() {
    const w = innerWidth, h = innerHeight;
    canvas.width = w;
    canvas.height = h;
    size = Math.max(12, Math.round(Math.min(w, h) / 30));
    cols = Math.ceil(w / size);
    rows = Math.ceil(h / size);
    head = new Float32Array(cols); speed = new Float32Array(cols); done = new Int32Array(cols);
    drawn = new Int32Array(cols); text = new Array(cols); hot = new Array(cols);
    for (let i = 0; i < cols; i++) restart(i, true);
    g.fillStyle = "#000";
    g.fillRect(0, 0, w, h);
  }

  function pick() {
    next = (next + 1 + Math.floor(Math.random() * 3)) % lines.length;
    return lines[next];
  }

  function glyph(ch, col, row, color) {
    g.fillStyle = "#000";
    g.fillRect(col * size, row * size, size, size);
    g.fillStyle = color;
    g.fillText(ch, col * size + size / 2, row * size);
  }

  let last = 0;
  function frame(now) {
    requestAnimationFrame(frame);
    if (now - last < FRAME_MS) return;
    last = now;
    // The tail fades: everything dims a little every frame.
    g.fillStyle = "rgba(0,0,0,0.07)";
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.font = size + "px ui-monospace, monospace";
    g.textBaseline = "top";
    g.textAlign = "center";
    for (let i = 0; i < cols; i++) {
      head[i] += speed[i];
      const r = Math.floor(head[i]);
      while (drawn[i] < r) {
        // The old head joins the tail in the column's colour; the new head is bright.
        const s = text[i];
        if (drawn[i] >= 0) glyph(s.charAt((done[i] - 1) % s.length) || " ", i, drawn[i], hot[i] ? ORANGE : GREEN);
        drawn[i]++;
        if (drawn[i] >= 0 && drawn[i] < rows) {
          glyph(s.charAt(done[i] % s.length) || " ", i, drawn[i], hot[i] ? "#ffd9a8" : HEAD);
          done[i]++;
        }
      }
      // Flicker: now and then a tail glyph changes.
      if (Math.random() < 0.08 && r > 2) {
        const fr = r - 1 - Math.floor(Math.random() * Math.min(r, 12));
        if (fr >= 0 && fr < rows) glyph(GLYPHS.charAt(Math.floor(Math.random() * GLYPHS.length)), i, fr, hot[i] ? ORANGE : "#2a8f52");
      }
      if (r > rows + 12 || (done[i] >= text[i].length && Math.random() < 0.02)) restart(i, false);
    }
  }

  // A caption for a real event, then gone.
  let captionTimer = 0;
  function announce(kind, name) {
    const t = kind + " · " + name;
    events.push({ text: t.toUpperCase() });
    if (events.length > 20) events.shift();
    if (caption) {
      caption.textContent = t;
      caption.hidden = false;
      clearTimeout(captionTimer);
      captionTimer = setTimeout(() => { caption.hidden = true; }, EVENT_MS);
    }
  }

  // Events are changes between two herd documents: nothing is orange unless it happened.
  const prev = new Map();
  function detect(d) {
    for (const m of d.miners) {
      const p = prev.get(m.id);
      if (p) {
        if (m.blocks_found > p.blocks) announce("block found", m.name);
        else if (m.best_diff != null && p.best != null && m.best_diff > p.best) announce("new best " + K.fmt.diff(m.best_diff), m.name);
        else if (m.accepted > p.accepted) announce("share accepted", m.name);
      }
      prev.set(m.id, { accepted: m.accepted, best: m.best_diff, blocks: m.blocks_found });
    }
  }

  // New log lines, a few miners per poll in turn (a big herd must not mean a burst of
  // requests every few seconds); only lines not seen before.
  const lastSeen = new Map();
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
          const t = l.line.trim();
          if (t) lines.push(t + " · " + m.name);
        }
        if (body.lines.length) lastSeen.set(m.id, body.lines[0].id);
      } catch (e) { /* server away: keep raining what we have */ }
    }
    if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
  }
  let feeding = false;
  K.onData(function (d) {
    detect(d);
    if (feeding) return;
    feeding = true;
    feed(d).finally(() => { feeding = false; });
  });

  // For the browser test: each column's head row.
  window.KioskRain = { heads: () => Array.from(head, (v) => Math.floor(v)) };

  addEventListener("resize", resize);
  resize();
  requestAnimationFrame(frame);
})();
