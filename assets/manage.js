// The manage page: queue a GET_CONFIG, a SET_CONFIG (form or raw JSON) or a backup restore,
// and follow it live by polling /api/commands/<id>.
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

  // Manual download mode (a board without the auto-reset circuit): added to every request
  // that talks to the bootloader.
  function mode(body) {
    const manual = el("no-reset");
    if (manual && manual.checked) body.no_reset = true;
    return body;
  }
  function asBody(obj) {
    return Object.keys(obj).length ? JSON.stringify(obj) : "";
  }

  function queueRead(url, body) {
    box.querySelectorAll("button").forEach((x) => (x.disabled = true));
    fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: asBody(mode(body)),
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
  }

  box.querySelectorAll("button[data-method]").forEach((b) => {
    b.addEventListener("click", () => {
      const method = b.dataset.method;
      queueRead("/api/miner/" + miner + "/get_config", method ? { method } : {});
    });
  });
  // Identify: a visible reboot, after the owner agreed to lose about 20 s of mining.
  const identify = el("identify");
  if (identify)
    identify.addEventListener("click", () => {
      const ok = window.confirm(
        identify.dataset.confirm ||
          "Identify resets this miner through its serial lines: its screen or LED reboots so you " +
            "can see which board it is. It costs about 20 s of mining. Go ahead?"
      );
      if (ok) queueRead("/api/miner/" + miner + "/identify", {});
    });
  const doctor = el("doctor");
  if (doctor)
    doctor.addEventListener("click", () => queueRead("/api/miner/" + miner + "/doctor", {}));

  // Queues a write (config object or restore) and follows it; shows each refused field next to
  // its input, keeping what was typed.
  function queueWrite(url, body) {
    document.querySelectorAll(".error").forEach((e) => (e.textContent = ""));
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body,
    })
      .then((r) => r.json())
      .then((j) => {
        if (j.id) {
          window.scrollTo(0, 0);
          follow(j.id);
          return;
        }
        (j.fields || []).forEach((f) => {
          const e = el("err-" + f.key);
          if (e) e.textContent = f.message;
        });
        const all = el("err-");
        if (all) all.textContent = j.error || "refused";
      })
      .catch((e) => {
        const all = el("err-");
        if (all) all.textContent = "Could not queue the write: " + e.message;
      });
  }

  const form = el("config-form");
  if (form) {
    const pickPool = el("pick-pool");
    if (pickPool)
      pickPool.addEventListener("change", () => {
        const o = pickPool.selectedOptions[0];
        if (!o || !o.value) return;
        el("f-poolString").value = o.value;
        el("f-portNumber").value = o.dataset.port;
      });
    const pickAddr = el("pick-address");
    if (pickAddr)
      pickAddr.addEventListener("change", () => {
        if (pickAddr.value) el("f-btcString").value = pickAddr.value;
      });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const config = {};
      form.querySelectorAll("[data-key]").forEach((i) => {
        const k = i.dataset.key;
        if (i.dataset.bool) config[k] = i.checked;
        else if (i.type === "number") {
          if (i.value !== "") config[k] = Number(i.value);
        } else if (k === "poolPassword") {
          if (i.value !== "") config[k] = i.value;
        } else config[k] = i.value;
      });
      if (!confirm("Write this configuration to the miner? It stops mining for a few minutes.")) return;
      queueWrite("/api/miner/" + miner + "/set_config", JSON.stringify(mode(config)));
    });
  }
  const raw = el("raw-write");
  if (raw)
    raw.addEventListener("click", () => {
      let parsed;
      try {
        parsed = JSON.parse(el("raw-config").value);
      } catch (e) {
        el("err-").textContent = "Not JSON: " + e.message;
        return;
      }
      if (!confirm("Write this JSON to the miner?")) return;
      queueWrite("/api/miner/" + miner + "/set_config", JSON.stringify(mode(parsed)));
    });
  document.querySelectorAll("button[data-restore]").forEach((b) => {
    b.addEventListener("click", () => {
      if (!confirm("Write backup #" + b.dataset.restore + " back to the miner?")) return;
      queueWrite("/api/backups/" + b.dataset.restore + "/restore", asBody(mode({})));
    });
  });

  // Canary rollout: start it, then poll its progress until it finishes or stops.
  function followRollout(id) {
    el("rollout-progress").hidden = false;
    const tick = () =>
      fetch("/api/rollout/" + id, { cache: "no-store" })
        .then((r) => r.json())
        .then((r) => {
          el("rollout-summary").textContent = r.summary || r.error || "";
          const ul = el("rollout-miners");
          ul.textContent = "";
          (r.miners || []).forEach((m, i) => {
            const li = document.createElement("li");
            li.textContent =
              (i === 0 ? "canary " : "") + m.name + ": " + m.state +
              (m.command ? " (command #" + m.command + ")" : "") +
              (m.detail ? " — " + m.detail : "");
            ul.appendChild(li);
          });
          if (!r.finished) setTimeout(tick, 1000);
        })
        .catch(() => setTimeout(tick, 2000));
    tick();
  }
  const rform = el("rollout-form");
  if (rform)
    rform.addEventListener("submit", (ev) => {
      ev.preventDefault();
      el("rollout-error").textContent = "";
      const change = {};
      rform.querySelectorAll("[data-rkey]").forEach((i) => {
        if (i.value === "") return;
        change[i.dataset.rkey] = i.type === "number" ? Number(i.value) : i.value;
      });
      const miners = Array.from(rform.querySelectorAll("input[name=miner]:checked")).map((c) =>
        Number(c.value)
      );
      if (!confirm("Write this change to " + miners.length + " miner(s), one at a time?")) return;
      fetch("/api/rollout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ change, miners }),
      })
        .then((r) => r.json())
        .then((j) => {
          if (j.id) followRollout(j.id);
          else el("rollout-error").textContent = j.error || "refused";
        })
        .catch((e) => (el("rollout-error").textContent = "Could not start: " + e.message));
    });

  fmtTimes();
  if (box.dataset.active) follow(box.dataset.active);
})();
