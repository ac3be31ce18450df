// The dashboard's alerts panel: polls /api/alerts and lists active alerts and recent history.
(function () {
  "use strict";
  const panel = document.getElementById("alerts");
  if (!panel) return;
  const activeList = document.getElementById("alerts-active");
  const historyList = document.getElementById("alerts-history");

  function item(a) {
    const li = document.createElement("li");
    li.className = "alert alert-" + a.severity + " alert-" + a.state;
    const when = new Date(a.first_at).toLocaleString();
    const until = a.resolved_at && a.state === "resolved" && a.rule !== "rebooted" && a.rule !== "block_found"
      ? " – resolved " + new Date(a.resolved_at).toLocaleTimeString() : "";
    // textContent only: messages carry miner names, which are user input.
    li.textContent = a.message + " (" + when + until + ")";
    return li;
  }

  function render(d) {
    activeList.replaceChildren(...d.active.map(item));
    historyList.replaceChildren(...d.history.filter((a) => a.state !== "active").map(item));
    if (d.active.length === 0) {
      const li = document.createElement("li");
      li.className = "alert alert-none";
      li.textContent = "No active alerts.";
      activeList.append(li);
    }
    panel.hidden = d.history.length === 0;
  }

  async function poll() {
    try {
      const r = await fetch("/api/alerts", { cache: "no-store" });
      if (r.ok) render(await r.json());
    } catch (e) { /* server restarting: keep what is shown */ }
  }

  poll();
  setInterval(poll, 5000);
})();
