-- The Shepherd database schema (current version; see src/db/migrate.rs for upgrades).
-- Times are Unix milliseconds (UTC). Foreign keys are enforced (PRAGMA foreign_keys = ON).

CREATE TABLE IF NOT EXISTS pools (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    url         TEXT    NOT NULL,
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    password    TEXT    NOT NULL DEFAULT 'x',
    created_at  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS coin_addresses (
    id          INTEGER PRIMARY KEY,
    label       TEXT    NOT NULL UNIQUE,
    address     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL DEFAULT 0
);

-- A miner is one USB device. `port` is where it was last found; `usb_serial` / `by_id_path`
-- identify it across replugs. `kind` is 'serial' for real hardware, 'demo' for simulators,
-- 'axeos' for a Bitaxe/NerdQAxe read over HTTP: its `port` is then the miner's URL.
CREATE TABLE IF NOT EXISTS miners (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    port              TEXT    NOT NULL,
    usb_serial        TEXT,
    by_id_path        TEXT,
    kind              TEXT    NOT NULL DEFAULT 'serial' CHECK (kind IN ('serial', 'demo', 'axeos')),
    enabled           INTEGER NOT NULL DEFAULT 1,
    pool_id           INTEGER REFERENCES pools(id) ON DELETE SET NULL,
    address_id        INTEGER REFERENCES coin_addresses(id) ON DELETE SET NULL,
    last_config_json  TEXT,
    last_config_at    INTEGER,
    created_at        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS miners_usb_serial ON miners(usb_serial) WHERE usb_serial IS NOT NULL;

-- USB serial devices that discovery saw and nobody has added as a miner yet (or that the owner
-- ignored). One row per board: boards with a unique serial number keep their row across ttys;
-- `tty` is where it was last seen. `firmware`, `pool` and `probe_detail` are what a short
-- read of the port found (see src/discovery/probe.rs).
CREATE TABLE IF NOT EXISTS unconfigured_devices (
    id            INTEGER PRIMARY KEY,
    tty           TEXT    NOT NULL,
    by_id_path    TEXT,
    vid           TEXT,
    pid           TEXT,
    usb_serial    TEXT,
    manufacturer  TEXT,
    product       TEXT,
    chip          TEXT,
    present       INTEGER NOT NULL DEFAULT 1,
    ignored       INTEGER NOT NULL DEFAULT 0,
    first_seen    INTEGER NOT NULL DEFAULT 0,
    last_seen     INTEGER NOT NULL DEFAULT 0,
    firmware      TEXT,
    pool          TEXT,
    probe_detail  TEXT,
    probed_at     INTEGER
);
-- Version 2 made tty unique over all rows; an unplugged (ignored) board must keep its row
-- while another board takes its tty name, so only present devices need distinct ttys.
DROP INDEX IF EXISTS unconfigured_devices_tty;
CREATE UNIQUE INDEX IF NOT EXISTS unconfigured_devices_present_tty
    ON unconfigured_devices(tty) WHERE present = 1;

-- Raw serial lines, high volume, pruned by age and size. Ids grow with time (one writer),
-- so pruning walks ids instead of keeping a second index on ts. There is no index on
-- miner_id either (one entry per line cost a fifth of ingest): each miner's lines of one
-- commit get consecutive ids, recorded in miner_log_spans (see src/db/logs.rs). Without an
-- index a foreign key would scan the table when a miner is deleted; the trigger below
-- deletes a miner's lines through its spans instead.
CREATE TABLE IF NOT EXISTS miner_logs (
    id         INTEGER PRIMARY KEY,
    miner_id   INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    line       TEXT    NOT NULL,
    truncated  INTEGER NOT NULL DEFAULT 0
);

-- Which ids hold a miner's lines: one row per miner per commit, never overlapping.
CREATE TABLE IF NOT EXISTS miner_log_spans (
    miner_id  INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    first_id  INTEGER NOT NULL,
    last_id   INTEGER NOT NULL,
    PRIMARY KEY (miner_id, first_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS miner_log_spans_last ON miner_log_spans(last_id);

CREATE TRIGGER IF NOT EXISTS miner_logs_of_deleted_miner BEFORE DELETE ON miners BEGIN
    DELETE FROM miner_logs WHERE id IN (
        SELECT l.id FROM miner_log_spans s JOIN miner_logs l ON l.id BETWEEN s.first_id AND s.last_id
        WHERE s.miner_id = OLD.id AND l.miner_id = OLD.id);
END;

-- Typed events parsed from the lines (see src/miner/parse.rs); the summarizer reads these,
-- never the raw lines. `value` holds the number an event carries, `detail` the rest as JSON.
CREATE TABLE IF NOT EXISTS miner_events (
    id        INTEGER PRIMARY KEY,
    miner_id  INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    ts        INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    value     REAL,
    detail    TEXT
);
CREATE INDEX IF NOT EXISTS miner_events_miner ON miner_events(miner_id, id);

-- One row per miner, everything a dashboard shows, kept current by the summarizer.
CREATE TABLE IF NOT EXISTS miner_summary (
    miner_id          INTEGER PRIMARY KEY REFERENCES miners(id) ON DELETE CASCADE,
    link_state        TEXT    NOT NULL DEFAULT 'offline',
    link_detail       TEXT,
    last_seen         INTEGER,
    hashrate_khs      REAL,
    hashrate_avg_10m  REAL,
    hashrate_avg_1h   REAL,
    hashrate_avg_24h  REAL,
    shares            INTEGER NOT NULL DEFAULT 0,
    accepted          INTEGER NOT NULL DEFAULT 0,
    rejected          INTEGER NOT NULL DEFAULT 0,
    best_diff         REAL,
    best_diff_session REAL,
    blocks_found      INTEGER NOT NULL DEFAULT 0,
    temperature       REAL,
    temp_max_24h      REAL,
    uptime_secs       INTEGER,
    restarts          INTEGER NOT NULL DEFAULT 0,
    pool              TEXT,
    firmware          TEXT,
    lines_total       INTEGER NOT NULL DEFAULT 0,
    lines_dropped     INTEGER NOT NULL DEFAULT 0,
    lines_truncated   INTEGER NOT NULL DEFAULT 0,
    last_event_id     INTEGER NOT NULL DEFAULT 0,
    state_json        TEXT,
    updated_at        INTEGER NOT NULL DEFAULT 0,
    -- Version 8 (firmware truth, diagnosis): when the board last booted as we saw it; the
    -- firmware's lifetime `Time mining`; whether it restores its counters from NVS (1/0/NULL
    -- unknown); since when the temperature has not changed (a flat ~53 °C is no sensor);
    -- what `shares` means for its version; other firmware family; display driver; the
    -- firmware's own valid-blocks figure; the diagnosis evidence (src/diagnosis.rs) as JSON.
    boot_at           INTEGER,
    time_mining_secs  INTEGER,
    restores_stats    INTEGER,
    temperature_since INTEGER,
    shares_meaning    TEXT,
    firmware_family   TEXT,
    display           TEXT,
    blocks_reported   INTEGER,
    evidence_json     TEXT,
    -- Version 18: the chip the miner named itself (a NerdMiner's boot `Chip:` line, an AxeOS
    -- miner's ASIC model), so the firmware inventory knows it without a flash read.
    chip_model        TEXT
);

-- Per-miner per-minute history for charts; small and kept long.
CREATE TABLE IF NOT EXISTS miner_minutes (
    miner_id      INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    minute        INTEGER NOT NULL,
    hashrate_khs  REAL,
    temperature   REAL,
    shares        INTEGER NOT NULL DEFAULT 0,
    samples       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (miner_id, minute)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS miner_commands (
    id           INTEGER PRIMARY KEY,
    miner_id     INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    -- DOCTOR (a read-only check of the flash link) from version 11; RESET (identify,
    -- self-healing) from version 13.
    command      TEXT    NOT NULL CHECK (command IN ('GET_CONFIG', 'SET_CONFIG', 'DOCTOR', 'RESET')),
    payload      TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'complete', 'error')),
    detail       TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    -- What the command produced, as JSON (GET_CONFIG: config with the password masked, files,
    -- backup, method used). Added in schema version 4.
    result_json  TEXT,
    started_at   INTEGER
);
CREATE INDEX IF NOT EXISTS miner_commands_miner ON miner_commands(miner_id, status);

-- Last known price / network figures with their fetch time (replaces btc_price.json).
CREATE TABLE IF NOT EXISTS price_cache (
    key         TEXT PRIMARY KEY,
    value_json  TEXT    NOT NULL,
    fetched_at  INTEGER NOT NULL
);

-- Raw SPIFFS partition images read from miners before any change.
CREATE TABLE IF NOT EXISTS config_backups (
    id          INTEGER PRIMARY KEY,
    miner_id    INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    path        TEXT    NOT NULL,
    chip        TEXT,
    mac         TEXT,
    offset      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Whether the image mounts with the firmware's SPIFFS parameters and holds a /config.json
    -- object (1) or not (0); NULL for backups stored before version 8. Pruning never deletes
    -- the newest backup with 1.
    config_ok   INTEGER
);

-- A write's promise to put a good backup back (version 8): recorded, and synced to disk, before
-- the first command that erases flash; deleted once the miner is confirmed running a good
-- configuration. While a row exists, the miner's port opening queues the restore of its backup
-- (at most `attempts` = 3 times per incident).
CREATE TABLE IF NOT EXISTS restore_intents (
    miner_id    INTEGER PRIMARY KEY REFERENCES miners(id) ON DELETE CASCADE,
    backup_id   INTEGER NOT NULL,
    command_id  INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Alerts and their history (version 4): one row per alert; a condition stays 'active' until it
-- clears, a happening (reboot, block found) is stored 'resolved' at once.
CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY,
    miner_id      INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    rule          TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('active', 'resolved')),
    severity      TEXT    NOT NULL DEFAULT 'warning',
    message       TEXT    NOT NULL,
    first_at      INTEGER NOT NULL,
    last_sent_at  INTEGER NOT NULL,
    resolved_at   INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, miner_id, rule);
CREATE INDEX IF NOT EXISTS alerts_first_at ON alerts(first_at);

-- Alert rule settings changed on /settings (version 6): `[alerts]` key and value as text; a key
-- without a row follows config.toml.
CREATE TABLE IF NOT EXISTS alert_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Read-only access tokens for kiosks and Prometheus (version 9; see src/web/auth.rs): only the
-- SHA-256 of each token is kept, the token itself is shown once when it is made.
CREATE TABLE IF NOT EXISTS read_tokens (
    id            INTEGER PRIMARY KEY,
    label         TEXT    NOT NULL,
    token_sha256  TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL
);

-- Reboots of each miner (version 10): when, the ROM reset reason, what it means (cause), the
-- line that explains it, how long the board had run, and the last raw lines before it (at
-- most 200 lines / 64 KiB, oldest first) — the crash context. At most 100 rows per miner.
CREATE TABLE IF NOT EXISTS miner_reboots (
    id                  INTEGER PRIMARY KEY,
    miner_id            INTEGER NOT NULL REFERENCES miners(id) ON DELETE CASCADE,
    at                  INTEGER NOT NULL,
    reset_reason        TEXT,
    cause               TEXT    NOT NULL,
    detail              TEXT,
    uptime_before_secs  INTEGER,
    context             TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS miner_reboots_miner ON miner_reboots(miner_id, at);

-- The lottery (version 12). Everything is keyed by the miner's identity, `miner_key`: its USB
-- serial number, or `miner:<id>` without one, so records survive re-plugs onto another tty.
-- Best shares: at most 10 rows per identity (the herd's top 10 is among them). `source` is
-- 'share' (a `Current diff share` line, exact) or 'best_line' (the firmware's rounded best);
-- `live` 0 marks a figure first seen as a baseline (restored from NVS, or the first look).
CREATE TABLE IF NOT EXISTS share_records (
    id           INTEGER PRIMARY KEY,
    miner_key    TEXT    NOT NULL,
    miner_id     INTEGER REFERENCES miners(id) ON DELETE SET NULL,
    miner_name   TEXT    NOT NULL,
    difficulty   REAL    NOT NULL,
    at           INTEGER NOT NULL,
    pool         TEXT,
    source       TEXT    NOT NULL CHECK (source IN ('share', 'best_line')),
    live         INTEGER NOT NULL DEFAULT 1,
    -- 1 when it beat every record of the herd as it came in.
    herd_record  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS share_records_key ON share_records(miner_key, difficulty);

-- Hashes computed and best live share per identity per hour (kept 31 days): luck over 24 h
-- and 30 days.
CREATE TABLE IF NOT EXISTS lottery_hours (
    miner_key  TEXT    NOT NULL,
    hour       INTEGER NOT NULL,
    hashes     REAL    NOT NULL DEFAULT 0,
    best       REAL,
    PRIMARY KEY (miner_key, hour)
) WITHOUT ROWID;

-- Hashes computed per identity since shepherd first watched it: luck over all time.
CREATE TABLE IF NOT EXISTS lottery_totals (
    miner_key  TEXT    PRIMARY KEY,
    hashes     REAL    NOT NULL DEFAULT 0,
    since      INTEGER NOT NULL
);

-- Submitted shares per identity per power-of-two difficulty bucket (2^bucket ≤ d < 2^(bucket+1)).
CREATE TABLE IF NOT EXISTS share_histogram (
    miner_key  TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (miner_key, bucket)
) WITHOUT ROWID;

-- Blocks found, kept forever.
CREATE TABLE IF NOT EXISTS found_blocks (
    id          INTEGER PRIMARY KEY,
    miner_key   TEXT    NOT NULL,
    miner_id    INTEGER REFERENCES miners(id) ON DELETE SET NULL,
    miner_name  TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    pool        TEXT
);

-- The last "test celebration" asked for on /settings (one row): every open dashboard and
-- kiosk shows the block celebration, marked TEST, for a minute after it.
CREATE TABLE IF NOT EXISTS celebration_test (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  INTEGER NOT NULL
);

-- Fleet configuration as desired state (version 14). A pool profile: primary pool first, then
-- fallbacks, as JSON [{"host","port","password"}]; the Pi's failover and schedule windows
-- (JSON [{"start","end","pool"}], UTC minutes of the day).
CREATE TABLE IF NOT EXISTS pool_profiles (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    pools_json     TEXT    NOT NULL,
    failover       INTEGER NOT NULL DEFAULT 0,
    down_minutes   INTEGER NOT NULL DEFAULT 10,
    back_minutes   INTEGER NOT NULL DEFAULT 10,
    schedule_json  TEXT    NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL DEFAULT 0,
    -- IANA zone of the schedule windows ('' = [fleet] time_zone, else the Pi's); schema 15.
    time_zone      TEXT    NOT NULL DEFAULT ''
);
-- Each miner's desired configuration: profile, payout address, worker name, board keys
-- (JSON object), and which of the profile's pools it should be on now (failover, schedules).
CREATE TABLE IF NOT EXISTS miner_desired (
    miner_id     INTEGER PRIMARY KEY REFERENCES miners(id) ON DELETE CASCADE,
    profile_id   INTEGER REFERENCES pool_profiles(id) ON DELETE SET NULL,
    address_id   INTEGER REFERENCES coin_addresses(id) ON DELETE SET NULL,
    worker       TEXT,
    board_json   TEXT    NOT NULL DEFAULT '{}',
    active_pool  INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL DEFAULT 0
);
-- Failover memory per miner (schema 15): timers and the automatic writes of the last day, so
-- a restart neither resets the rate limits nor restarts the "down for N minutes" clocks.
CREATE TABLE IF NOT EXISTS failover_state (
    miner_id     INTEGER PRIMARY KEY REFERENCES miners(id) ON DELETE CASCADE,
    state_json   TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL DEFAULT 0
);

-- The hub (version 17): what other sites publish on the shared MQTT broker (see src/hub/).
-- Remote miners live here only, never in `miners`, so no local actor ever starts for them.
-- A site: its availability (`online` from its status topic or last will), the link to its
-- own Shepherd, its herd totals, when its status last changed and when anything last came.
CREATE TABLE IF NOT EXISTS hub_sites (
    site        TEXT    PRIMARY KEY,
    online      INTEGER NOT NULL DEFAULT 0,
    url         TEXT,
    version     TEXT,
    herd_json   TEXT,
    status_at   INTEGER NOT NULL,
    last_heard  INTEGER NOT NULL
);
-- A remote miner's last state document, as its site published it (schema 1).
CREATE TABLE IF NOT EXISTS hub_miners (
    site         TEXT    NOT NULL,
    miner_id     INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    state_json   TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (site, miner_id)
) WITHOUT ROWID;
-- Remote miners' history, one point per miner per minute, from what arrived.
CREATE TABLE IF NOT EXISTS hub_history (
    site         TEXT    NOT NULL,
    miner_id     INTEGER NOT NULL,
    minute       INTEGER NOT NULL,
    status       TEXT,
    hashrate     REAL,
    temperature  REAL,
    PRIMARY KEY (site, miner_id, minute)
) WITHOUT ROWID;
-- Events (records, blocks, incidents) as sites published them, once each.
CREATE TABLE IF NOT EXISTS hub_events (
    site      TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    event_id  INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    miner     TEXT,
    json      TEXT    NOT NULL,
    PRIMARY KEY (site, kind, event_id)
) WITHOUT ROWID;
-- When the hub listened: between one run's `alive_at` and the next one's `started_at` nothing
-- was received, so remote history has a gap there.
CREATE TABLE IF NOT EXISTS hub_runs (
    started_at  INTEGER PRIMARY KEY,
    alive_at    INTEGER NOT NULL
);
