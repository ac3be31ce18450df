// The day a block is found: a full-screen celebration on every open dashboard and kiosk, for
// 24 hours after the find or until dismissed here. A new herd record gets a banner for a
// minute. A test celebration asked for on /settings shows the same screen, marked TEST, for a
// minute. Fed by the "shepherd:herd" event that app.js and kiosk.js fire with each herd document.
(function () {
  "use strict";
  const DAY_MS = 86400000, TEST_MS = 60000, RECORD_MS = 60000;
  const store = {
    get(k) { try { return localStorage.getItem("shepherd." + k); } catch (e) { return null; } },
    set(k, v) { try { localStorage.setItem("shepherd." + k, String(v)); } catch (e) { /* private mode */ } },
  };
  const diff = (v) => window.ShepherdFormat ? window.ShepherdFormat.diff(v) : String(v);
  let overlay = null, shown = null, recordTimer = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function when(ts) { return new Date(ts).toLocaleString(); }

  // key: what was shown ("block:<id>" or "test:<at>"), so a dismissal sticks to it.
  function show(key, test, block) {
    if (shown === key) return;
    hide();
    shown = key;
    overlay = el("div", "celebration" + (test ? " is-test" : ""));
    overlay.id = "celebration";
    overlay.setAttribute("role", "alertdialog");
    overlay.setAttribute("aria-live", "assertive");
    const box = el("div", "celebration-box");
    if (test) box.appendChild(el("div", "celebration-test", "TEST — no block was found. This is what the day will look like."));
    box.appendChild(el("div", "celebration-title", "BLOCK FOUND!"));
    box.appendChild(el("div", "celebration-miner", block.miner));
    box.appendChild(el("div", "celebration-detail",
      when(block.at) + (block.pool ? " · " + block.pool : "") + (test ? "" : " · check your wallet")));
    const close = el("button", "celebration-close", test ? "Close test" : "Dismiss on this screen");
    close.type = "button";
    close.addEventListener("click", function () { store.set("dismissed", key); hide(); });
    box.appendChild(close);
    for (let i = 0; i < 60; i++) {
      const c = el("span", "confetti c" + (i % 6));
      c.style.left = (i * 37 % 100) + "%";
      c.style.animationDelay = (i % 10) * 0.3 + "s";
      overlay.appendChild(c);
    }
    overlay.appendChild(box);
    document.body.appendChild(overlay);
  }

  function hide() {
    if (overlay) overlay.remove();
    overlay = null;
    shown = null;
  }

  function recordBanner(r) {
    let b = document.getElementById("new-record");
    if (!b) {
      b = el("div", "new-record");
      b.id = "new-record";
      b.setAttribute("role", "status");
      document.body.appendChild(b);
    }
    b.textContent = "New herd record: " + diff(r.difficulty) + " by " + r.miner;
    b.hidden = false;
    clearTimeout(recordTimer);
    recordTimer = setTimeout(function () { b.hidden = true; }, RECORD_MS);
  }

  function check(d) {
    const l = d && d.lottery;
    if (!l) return;
    const now = d.server_time;
    const dismissed = store.get("dismissed");
    const block = (l.found_blocks || []).find((b) => now - b.at < DAY_MS);
    const t = l.test_celebration_at;
    if (block && dismissed !== "block:" + block.id) {
      show("block:" + block.id, false, block);
    } else if (t != null && now - t < TEST_MS && dismissed !== "test:" + t) {
      show("test:" + t, true, { miner: "Your herd", at: t, pool: null });
    } else if (shown) {
      hide();
    }
    // A new herd record, announced once per screen (the first look only remembers it).
    const r = l.latest_herd_record;
    if (r) {
      const seen = Number(store.get("record_seen") || 0);
      if (seen && r.id > seen) recordBanner(r);
      if (r.id > seen) store.set("record_seen", r.id);
    } else {
      store.set("record_seen", -1); // none yet: the first one is news
    }
  }

  let fed = false;
  document.addEventListener("shepherd:herd", function (e) { fed = true; check(e.detail); });
  // Pages without a live feed of their own (settings, a miner's page) look every 10 s.
  async function poll() {
    if (fed) return;
    try {
      const r = await fetch("/api/herd_data", { cache: "no-store" });
      if (r.ok) check(await r.json());
    } catch (e) { /* server away: try again */ }
    setTimeout(poll, 10000);
  }
  setTimeout(poll, 3000);
})();
