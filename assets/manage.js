// The manage page: queue a GET_CONFIG and follow it live by polling /api/commands/<id>.
(function () {
  "use strict";
  const box = document.getElementById("read");
  if (!box) return;
  const miner = box.dataset.miner;
  const el = (id) => document.getElementById(id);

  function fmtTimes() {
    document.querySelectorAll(".ts[data-ts]").forEach((s) => {
      const ms = Number(s.dataset.ts);
      if (ms > 0) s.textContent = new Date(ms).toLocaleString();
    });
  }

  function showResult(cmd) {
    const out = el("cmd-result");
    out.textContent = "";
    const r = cmd.result;
    if (!r) return;
    if (r.config) {
      const pre = document.createElement("pre");
      pre.className = "config";
      pre.textContent = JSON.stringify(r.config, null, 2);
      out.appendChild(pre);
    }
    if (Array.isArray(r.files) && r.files.length) {
      const ul = document.createElement("ul");
      r.files.forEach((f) => {
        const li = document.createElement("li");
        li.textContent = f.path + " — " + f.size + " bytes";
        ul.appendChild(li);
      });
      out.appendChild(ul);
    }
  }

  function follow(id) {
    el("progress").hidden = false;
    const last = el("last-command");
    if (last) last.hidden = true;
    el("cmd-id").textContent = "#" + id;
    const tick = () => {
      fetch("/api/commands/" + id, { cache: "no-store" })
        .then((r) => r.json())
        .then((cmd) => {
          el("cmd-status").textContent = cmd.status;
          el("cmd-status").className = "badge cmd-" + cmd.status;
          el("cmd-detail").textContent = cmd.detail || "";
          if (cmd.status === "complete" || cmd.status === "error") {
            showResult(cmd);
            box.querySelectorAll("button").forEach((b) => (b.disabled = false));
            // Reload shortly so the stored configuration and the new backup are listed.
            setTimeout(() => location.reload(), 2500);
          } else {
            setTimeout(tick, 700);
          }
        })
        .catch(() => setTimeout(tick, 2000));
    };
    tick();
  }

  box.querySelectorAll("button[data-method]").forEach((b) => {
    b.addEventListener("click", () => {
      box.querySelectorAll("button").forEach((x) => (x.disabled = true));
      const method = b.dataset.method;
      fetch("/api/miner/" + miner + "/get_config", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: method ? JSON.stringify({ method }) : "",
      })
        .then((r) => r.json())
        .then((j) => {
          if (j.id) follow(j.id);
          else throw new Error(j.error || "refused");
        })
        .catch((e) => {
          el("progress").hidden = false;
          el("cmd-detail").textContent = "Could not queue the command: " + e.message;
          box.querySelectorAll("button").forEach((x) => (x.disabled = false));
        });
    });
  });

  fmtTimes();
  if (box.dataset.active) follow(box.dataset.active);
})();
