// Drawing primitives for the homage kiosk (assets/kiosk-homage.js), all our own: a 5x7 bitmap
// font, slanted 7-segment digits, the pickaxe mark, slanted panels and dotted boxes, drawn on
// a 320x170 canvas (the T-Display's panel) with hard pixel edges, never anti-aliased, so the
// page can blow it up by a whole number with square pixels.
(function () {
  "use strict";

  // 5x7 glyphs, one number per row, bit 4 the leftmost pixel.
  const FONT = {
    "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14], "2": [14, 17, 1, 2, 4, 8, 31],
    "3": [31, 2, 4, 2, 1, 17, 14], "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
    "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8], "8": [14, 17, 17, 14, 17, 17, 14],
    "9": [14, 17, 17, 15, 1, 2, 12],
    A: [14, 17, 17, 31, 17, 17, 17], B: [30, 17, 17, 30, 17, 17, 30], C: [14, 17, 16, 16, 16, 17, 14],
    D: [28, 18, 17, 17, 17, 18, 28], E: [31, 16, 16, 30, 16, 16, 31], F: [31, 16, 16, 30, 16, 16, 16],
    G: [14, 17, 16, 23, 17, 17, 15], H: [17, 17, 17, 31, 17, 17, 17], I: [14, 4, 4, 4, 4, 4, 14],
    J: [7, 2, 2, 2, 2, 18, 12], K: [17, 18, 20, 24, 20, 18, 17], L: [16, 16, 16, 16, 16, 16, 31],
    M: [17, 27, 21, 21, 17, 17, 17], N: [17, 17, 25, 21, 19, 17, 17], O: [14, 17, 17, 17, 17, 17, 14],
    P: [30, 17, 17, 30, 16, 16, 16], Q: [14, 17, 17, 17, 21, 18, 13], R: [30, 17, 17, 30, 20, 18, 17],
    S: [15, 16, 16, 14, 1, 1, 30], T: [31, 4, 4, 4, 4, 4, 4], U: [17, 17, 17, 17, 17, 17, 14],
    V: [17, 17, 17, 17, 17, 10, 4], W: [17, 17, 17, 21, 21, 21, 10], X: [17, 17, 10, 4, 10, 17, 17],
    Y: [17, 17, 10, 4, 4, 4, 4], Z: [31, 1, 2, 4, 8, 16, 31],
    ".": [0, 0, 0, 0, 0, 12, 12], ",": [0, 0, 0, 0, 12, 4, 8], ":": [0, 12, 12, 0, 12, 12, 0],
    "/": [1, 1, 2, 4, 8, 16, 16], "-": [0, 0, 0, 31, 0, 0, 0], "+": [0, 4, 4, 31, 4, 4, 0],
    "%": [24, 25, 2, 4, 8, 19, 3], "°": [12, 18, 18, 12, 0, 0, 0], "²": [12, 18, 4, 8, 30, 0, 0],
    "(": [2, 4, 8, 8, 8, 4, 2], ")": [8, 4, 2, 2, 2, 4, 8], "#": [10, 10, 31, 10, 31, 10, 10],
    "?": [14, 17, 1, 2, 4, 0, 4], "!": [4, 4, 4, 4, 4, 0, 4], "<": [2, 4, 8, 16, 8, 4, 2],
    ">": [8, 4, 2, 1, 2, 4, 8], "$": [4, 15, 20, 14, 5, 30, 4], "=": [0, 0, 31, 0, 31, 0, 0],
    "'": [4, 4, 8, 0, 0, 0, 0], "—": [0, 0, 0, 31, 0, 0, 0], "−": [0, 0, 0, 31, 0, 0, 0], " ": [0, 0, 0, 0, 0, 0, 0],
  };

  // Which segments light for each character: a top, b upper right, c lower right, d bottom,
  // e lower left, f upper left, g middle.
  const SEG = {
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd", "6": "afgedc",
    "7": "abc", "8": "abcdefg", "9": "abcdfg", "-": "g", " ": "", "E": "adefg", "H": "bcefg",
  };

  function rect(g, x, y, w, h, color) {
    g.fillStyle = color;
    g.fillRect(Math.round(x), Math.round(y), Math.round(w), Math.round(h));
  }

  // Text in the 5x7 font at a whole-number scale; align "left", "right" or "center".
  function text(g, s, x, y, scale, color, align) {
    s = String(s).toUpperCase();
    const k = scale || 1, w = textWidth(s, k);
    let cx = align === "right" ? x - w : align === "center" ? x - Math.floor(w / 2) : x;
    g.fillStyle = color;
    for (const ch of s) {
      const rows = FONT[ch] || FONT["?"];
      for (let r = 0; r < 7; r++) {
        for (let c = 0; c < 5; c++) if (rows[r] & (16 >> c)) g.fillRect(cx + c * k, y + r * k, k, k);
      }
      cx += 6 * k;
    }
    return w;
  }
  function textWidth(s, scale) { return Math.max(0, [...String(s)].length * 6 - 1) * (scale || 1); }

  // One lit segment as a polygon, slanted like the firmware's digital face.
  function seg(g, pts, slant, top) {
    g.beginPath();
    pts.forEach(([px, py], i) => {
      const sx = px + (top - py) * slant;
      if (i) g.lineTo(sx, py); else g.moveTo(sx, py);
    });
    g.closePath();
    g.fill();
  }

  function sevenMetrics(h) {
    const t = Math.max(2, Math.round(h / 9));
    return { w: Math.round(h * 0.5), t, gap: Math.max(2, Math.round(h / 8)), narrow: Math.max(t + 2, Math.round(h / 5)) };
  }
  // Width in pixels of s in 7-segment digits h pixels tall.
  function sevenWidth(s, h) {
    const m = sevenMetrics(h);
    return [...String(s)].reduce((a, ch) => a + (ch === "." || ch === ":" ? m.narrow : m.w + m.gap), 0);
  }
  // The tallest 7-segment height up to h at which s fits in maxW pixels.
  function sevenFit(s, h, maxW) {
    while (h > 8 && sevenWidth(s, h) > maxW) h--;
    return h;
  }

  // 7-segment digits, h pixels tall, right- or left-aligned at x; "." and ":" are narrow.
  function seven(g, s, x, y, h, color, align) {
    s = String(s);
    const { w, t, gap, narrow } = sevenMetrics(h);
    const width = sevenWidth(s, h);
    let cx = align === "right" ? x - width : align === "center" ? x - Math.floor(width / 2) : x;
    const slant = 0.12, mid = y + h / 2;
    g.fillStyle = color;
    for (const ch of s) {
      if (ch === ".") { seg(g, [[cx, y + h - t], [cx + t, y + h - t], [cx + t, y + h], [cx, y + h]], slant, y); cx += narrow; continue; }
      if (ch === ":") {
        seg(g, [[cx, y + h * .3], [cx + t, y + h * .3], [cx + t, y + h * .3 + t], [cx, y + h * .3 + t]], slant, y);
        seg(g, [[cx, y + h * .7 - t], [cx + t, y + h * .7 - t], [cx + t, y + h * .7], [cx, y + h * .7]], slant, y);
        cx += narrow; continue;
      }
      const on = SEG[ch] || "", a = t / 2;
      const H = (yy) => [[cx + a, yy], [cx + t, yy - a], [cx + w - t, yy - a], [cx + w - a, yy], [cx + w - t, yy + a], [cx + t, yy + a]];
      const V = (xx, y0, y1) => [[xx, y0 + a], [xx + a, y0 + t], [xx + a, y1 - t], [xx, y1 - a], [xx - a, y1 - t], [xx - a, y0 + t]];
      if (on.includes("a")) seg(g, H(y + a), slant, y);
      if (on.includes("g")) seg(g, H(mid), slant, y);
      if (on.includes("d")) seg(g, H(y + h - a), slant, y);
      if (on.includes("f")) seg(g, V(cx + a, y + a, mid), slant, y);
      if (on.includes("e")) seg(g, V(cx + a, mid, y + h - a), slant, y);
      if (on.includes("b")) seg(g, V(cx + w - a, y + a, mid), slant, y);
      if (on.includes("c")) seg(g, V(cx + w - a, mid, y + h - a), slant, y);
      cx += w + gap;
    }
    return width;
  }

  // A filled polygon: the slanted colour panels of the NerdMiner face.
  function panel(g, pts, color) {
    g.fillStyle = color;
    g.beginPath();
    pts.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
    g.closePath();
    g.fill();
  }

  // A box drawn with every other pixel, like the VALID BLOCKS frame.
  function dotted(g, x, y, w, h, color) {
    g.fillStyle = color;
    for (let i = 0; i < w; i += 2) { g.fillRect(x + i, y, 1, 1); g.fillRect(x + i, y + h - 1, 1, 1); }
    for (let j = 0; j < h; j += 2) { g.fillRect(x, y + j, 1, 1); g.fillRect(x + w - 1, y + j, 1, 1); }
  }

  // The pickaxe mark, 20x20 pixels: a curved head over a diagonal handle.
  function pickaxe(g, x, y, head, handle) {
    g.fillStyle = handle;
    for (let i = 0; i < 14; i++) g.fillRect(x + 3 + i, y + 18 - i, 2, 2);
    g.fillStyle = head;
    const arc = [[1, 9], [2, 7], [3, 5], [4, 4], [5, 3], [7, 2], [9, 1], [11, 1], [13, 2], [15, 3], [16, 4], [17, 5], [18, 7], [19, 9]];
    for (const [ax, ay] of arc) g.fillRect(x + ax - 1, y + ay, 2, 2);
    g.fillRect(x + 10, y + 3, 3, 3);
  }

  // Every pixel to the nearest palette colour: no blurred edges once scaled up.
  function snap(g, w, h, palette) {
    const img = g.getImageData(0, 0, w, h), px = img.data;
    for (let i = 0; i < px.length; i += 4) {
      let best = 0, bestD = Infinity;
      for (let k = 0; k < palette.length; k++) {
        const p = palette[k], dr = px[i] - p[0], dg = px[i + 1] - p[1], db = px[i + 2] - p[2];
        const dist = dr * dr + dg * dg + db * db;
        if (dist < bestD) { bestD = dist; best = k; }
      }
      const p = palette[best];
      px[i] = p[0]; px[i + 1] = p[1]; px[i + 2] = p[2]; px[i + 3] = 255;
    }
    g.putImageData(img, 0, 0);
  }

  // The largest whole-number scale of a w x h screen inside the viewport (at least 1).
  function wholeScale(w, h, vw, vh) { return Math.max(1, Math.floor(Math.min(vw / w, vh / h))); }

  window.NerdDraw = { FONT, rect, text, textWidth, seven, sevenWidth, sevenFit, panel, dotted, pickaxe, snap, wholeScale };
})();
