-- The journal's store: the SQLite file (bound in C by kling.core), its
-- schema and migrations, every SQL statement, and the owners of entries.
-- This is what a second store (say PostgreSQL, for many machines) would
-- replace: the rest of kling knows the methods below, not the SQL. An
-- entry goes
--   queued -> sending -> submitted -> succeed | failed
-- or ends "uncertain" when a submit may have been billed without a known
-- task id. What each state allows is decided in billing.lua; when a write
-- runs (staged for the writer thread, or at once) is the tracker's
-- (journal/tracker.lua); the hand-over is handover.lua's.
if jit then jit.off(true, true) end -- docs/design.md, "Interpreted on LuaJIT"
local core = require "kling.core"
local compat = require "kling.compat"
local errors = require "kling.errors"
local Handover = require "kling.handover"
local Tracker = require "kling.journal.tracker"

local Store = {}
Store.__index = Store
Store.__name = "kling.journal.store"

local SCHEMA_VERSION = 4

-- PRAGMA application_id of a kling journal ("KlJn"): a SQLite file of
-- another application is recognised, and left alone.
local APPLICATION_ID = 0x4B6C4A6E

local SCHEMA = [[
CREATE TABLE IF NOT EXISTS jobs (
  key            TEXT PRIMARY KEY,
  endpoint       TEXT NOT NULL,     -- the request kind (lua/kling/endpoints/)
  params         TEXT,              -- what the job asks, canonical JSON (a key reused otherwise is refused)
  state          TEXT NOT NULL CHECK (state IN
                   ('queued', 'sending', 'submitted', 'succeed', 'failed', 'uncertain')),
  task_id        TEXT,
  owner          TEXT,              -- the journal handle working on it (queued, sending)
  request        TEXT,              -- the JSON body submitted
  result         TEXT,              -- the final answer, JSON
  error          TEXT,              -- { kind, message, code }, JSON
  path           TEXT,              -- where the video was saved
  callback_token TEXT,              -- the secret in the job's callback URL
  uploads        TEXT,              -- local files already uploaded: { field = { path, bytes, url } }, JSON
  delivered      INTEGER NOT NULL DEFAULT 0, -- a webhook reported it finished
  created_at     REAL NOT NULL,
  updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_task_id ON jobs (task_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
-- one row per open journal handle: how any client, whatever path it took to
-- this file, tells whether the handle is alive (src/owners.h)
CREATE TABLE IF NOT EXISTS owners (
  id         TEXT PRIMARY KEY,
  lock_path  TEXT NOT NULL,         -- absolute; flocked for as long as the handle is open
  pid        INTEGER NOT NULL,
  boot_id    TEXT,                  -- the machine's boot the process runs in
  started_at REAL NOT NULL
);
-- files uploaded, by content: a file that many jobs share (a batch's one
-- dance.mp4) is uploaded once; the platform's URLs are public and permanent
-- (docs/api.md, "Uploading local files")
CREATE TABLE IF NOT EXISTS uploads (
  sha256     TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  suffix     TEXT NOT NULL,         -- the file name's extension: the platform keeps the name
  platform   TEXT NOT NULL,         -- the platform base URL it was uploaded to
  url        TEXT NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (sha256, bytes, suffix, platform)
);
]]

local PUBLIC_COLUMNS = "key, endpoint, state, task_id, result, error, path, request, created_at, updated_at"

local now = core.time -- wall-clock seconds: entries outlive the process

local function journal_error(message)
  return errors.new("journal", message)
end

-- Is db a kling journal (or an empty file about to become one)? true, or
-- nil and why not. Asked before anything is written: a database of another
-- application is left untouched.
local function identify(db, path)
  -- one snapshot: another process may be creating the journal right now
  local rows, err = db:run("BEGIN")
  if rows then rows, err = db:query("PRAGMA application_id") end
  if not rows then
    db:run("ROLLBACK")
    return nil, ("cannot use %s as a journal: %s"):format(path, err)
  end
  local app = rows[1] and rows[1].application_id or 0
  local version = (db:query("PRAGMA user_version") or {})[1]
  version = version and version.user_version or 0
  local tables = {}
  for _, t in ipairs(db:query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
    .. "ORDER BY name") or {}) do
    tables[#tables + 1] = t.name
  end
  db:run("COMMIT")
  local list = table.concat(tables, ", ")
  if app == APPLICATION_ID or app == 0 and (#tables == 0 and version == 0
      -- a journal of kling before application_id: schema 1 or 2, its jobs table alone
      or (version == 1 or version == 2) and list == "jobs") then
    if version > SCHEMA_VERSION then
      return nil, ("%s was written by a newer kling (schema %d)"):format(path, version)
    end
    return true
  end
  return nil, ("%s is a SQLite database of another application (application_id %d, tables: %s), not a kling "
    .. "journal; it was left untouched"):format(path, app, #tables > 0 and list or "none")
end

-- Creates the schema, or brings an earlier one up to date, keeping every
-- entry; one write transaction, so that two processes opening a journal at
-- once migrate it once. legacy: the endpoint of entries recorded before
-- journals named one (schemas 1 to 3).
local function migrate(db, legacy)
  local ok, err = db:run("BEGIN IMMEDIATE")
  if not ok then return nil, err end
  local rows
  rows, err = db:query("PRAGMA user_version")
  local version = rows and rows[1].user_version
  if version and version < SCHEMA_VERSION then
    local steps = { SCHEMA }
    if version == 1 then steps[#steps + 1] = "ALTER TABLE jobs ADD COLUMN uploads TEXT;" end
    if version >= 1 and version <= 3 then
      steps[#steps + 1] = ("ALTER TABLE jobs ADD COLUMN endpoint TEXT NOT NULL DEFAULT '%s';"):format(
        legacy:gsub("'", "''"))
      steps[#steps + 1] = "ALTER TABLE jobs ADD COLUMN params TEXT;"
    end
    steps[#steps + 1] = ("PRAGMA application_id = %d; PRAGMA user_version = %d;"):format(APPLICATION_ID,
      SCHEMA_VERSION)
    ok, err = db:exec(table.concat(steps, "\n"))
  else
    ok = version ~= nil
  end
  if ok then ok, err = db:run("COMMIT") end
  if not ok then db:run("ROLLBACK") end
  return ok, err
end

-- Opens (or creates) the journal at path; returns it, or nil and an error.
-- sync: "full" (a commit is on disk when it returns; the default) or
-- "normal" (it is in the OS's hands: safe from a process crash, not from
-- power loss); see docs/design.md.
-- legacy_endpoint: the endpoint of entries recorded before journals named
-- one (default: endpoints.legacy).
function Store.open(path, sync, legacy_endpoint)
  legacy_endpoint = legacy_endpoint or require("kling.endpoints").legacy
  local db, err = core.journal(path)
  if not db then return nil, journal_error(err) end
  local ok
  ok, err = identify(db, path)
  if ok then ok, err = db:start(sync or "full") end
  if ok then ok, err = migrate(db, legacy_endpoint) end
  local me = ok and db:identity()
  if ok then
    ok, err = db:run("INSERT INTO owners (id, lock_path, pid, boot_id, started_at) VALUES (?, ?, ?, ?, ?)",
      me.owner, me.lock_path, me.pid, me.boot_id, now())
  end
  if not ok then
    db:close()
    return nil, journal_error(err)
  end
  return setmetatable({ db = db, path = path, tracker = Tracker.new(db) }, Store)
end

function Store:__tostring()
  return ("kling.journal.store (%s)"):format(self.path)
end

-- Idempotent. The owner's record goes first, then its lock file.
function Store:close()
  if self.closed then return end
  self.closed = true
  self.db:run("DELETE FROM owners WHERE id = ?", self.db:owner())
  self.db:close(true)
end

function Store:owner()
  return self.db:owner()
end

-- From now on the writes of scheduler's jobs are staged for the writer
-- thread, and submits' bodies are handed over through this journal
-- (handover.lua).
function Store:attach(scheduler)
  self.tracker:attach(scheduler, Handover.new(scheduler, self.db:owner()))
end

-- Inside a job: waits until every write staged so far is committed (what a
-- call returns is then what the journal says).
function Store:settle()
  self.tracker:settle()
end

-- Commits everything staged and acts on it (the client's close).
function Store:finish_writes()
  self.tracker:finish()
end

-- ---- reading ----

local function decode(text)
  if text == nil then return nil end
  local value = core.decode(text)
  return value
end

local function entry_of(row)
  if row == nil then return nil end
  return {
    key = row.key, endpoint = row.endpoint, state = row.state, task_id = row.task_id, path = row.path,
    result = decode(row.result), error = decode(row.error), request = decode(row.request),
    created_at = row.created_at, updated_at = row.updated_at,
  }
end

local function check(v, err)
  if v == nil then error(journal_error(err), 0) end
  return v
end

-- A write (see Tracker:write), true instead of the count.
local function update(self, wait, sql, ...)
  local n, err = self.tracker:write(wait, sql, ...)
  if not n then return nil, err end
  return true
end

-- The entry for key, or nil when the journal does not know it.
function Store:get(key)
  if type(key) ~= "string" then error("bad argument #1 to 'get' (string expected, got " .. type(key) .. ")", 2) end
  local rows, err = self.db:query("SELECT " .. PUBLIC_COLUMNS .. " FROM jobs WHERE key = ?", key)
  if not rows then return nil, journal_error(err) end
  return entry_of(rows[1])
end

-- Every entry (or those in opts.state), oldest first.
function Store:list(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'list' (table or nil expected)", 2) end
  local rows, err
  if opts.state ~= nil then
    rows, err = self.db:query("SELECT " .. PUBLIC_COLUMNS .. " FROM jobs WHERE state = ? ORDER BY created_at, key",
      tostring(opts.state))
  else
    rows, err = self.db:query("SELECT " .. PUBLIC_COLUMNS .. " FROM jobs ORDER BY created_at, key")
  end
  if not rows then return nil, journal_error(err) end
  local list = {}
  for i, row in ipairs(rows) do list[i] = entry_of(row) end
  return list
end

-- States whose key may have been billed: forgetting one lets the same job
-- be submitted (and billed) again.
local BILLED = { submitted = true, succeed = true, failed = true, uncertain = true }

-- Forgets key, so that it may be submitted again; true if it was known,
-- false if not. A key that may have been billed (submitted, succeed,
-- failed, uncertain) is forgotten only with opts.force; a key whose request
-- is leaving right now from an open client never is.
function Store:forget(key, opts)
  if type(key) ~= "string" then error("bad argument #1 to 'forget' (string expected, got " .. type(key) .. ")", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'forget' (table or nil expected)", 2) end
  local force = opts and opts.force
  -- the check and the delete in one write transaction: the entry cannot
  -- change between them
  return self:transaction(function()
    local row = self:row(key)
    if not row then return false end
    if row.state == "sending" and row.owner and self:owner_alive(row.owner) then
      error(errors.new("invalid_argument", ("key %s is being submitted right now by an open client"):format(key),
        { field = "key", key = key }), 0)
    end
    if (BILLED[row.state] or row.state == "sending") and not force then -- sending, its client gone: may be billed
      local what = row.task_id and ("task %s"):format(row.task_id) or "a task whose id is not known"
      error(errors.new("invalid_argument", ("key %s is %s: it may have been billed (%s). Forgetting it lets the "
        .. "same job be submitted and billed again; forget it with force (kling jobs --forget %s --force, or "
        .. "journal:forget(key, { force = true })) only if that is what you want"):format(key, row.state, what, key),
        { field = "force", key = key, task_id = row.task_id }), 0)
    end
    return check(self.db:run("DELETE FROM jobs WHERE key = ?", key)) > 0
  end)
end

-- Attaches task_id (found in the AceData task list) to key, whose submit
-- may have been billed without a known id (uncertain; or sending, its
-- client gone): the key is then submitted, and followed like any.
-- Returns true, or nil and an error.
function Store:adopt(key, task_id)
  if type(key) ~= "string" then error("bad argument #1 to 'adopt' (string expected, got " .. type(key) .. ")", 2) end
  local bad = require("kling.validate").task_id(task_id)
  if bad then return nil, bad end
  local row = self:get(key)
  if not row then
    return nil, errors.new("not_found", ("the journal has no key %s"):format(key), { key = key })
  end
  if row.state ~= "uncertain" and row.state ~= "sending" then
    return nil, errors.new("invalid_argument", ("key %s is %s%s; only an uncertain key takes a task id"):format(key,
      row.state, row.task_id and (" with task " .. row.task_id) or ""), { field = "key", key = key })
  end
  local n, err = self:transaction(function()
    local current = self:row(key)
    if current.state == "sending" and current.owner and self:owner_alive(current.owner) then
      error(errors.new("invalid_argument", ("key %s is being submitted right now by an open client"):format(key),
        { field = "key", key = key }), 0)
    end
    return check(self.db:run([[UPDATE jobs SET state = 'submitted', task_id = ?, owner = NULL, error = NULL,
      updated_at = ? WHERE key = ? AND state IN ('uncertain', 'sending')]], task_id, now(), key))
  end)
  if not n then return nil, err end
  return true
end

-- ---- the engine's side ----

-- Runs fn inside one write transaction (BEGIN IMMEDIATE: the check and the
-- write it decides cannot interleave with another process's).
function Store:transaction(fn)
  local ok, err = self.db:run("BEGIN IMMEDIATE")
  if not ok then return nil, journal_error(err) end
  local r = compat.pack(pcall(fn))
  if r[1] then
    ok, err = self.db:run("COMMIT")
    if ok then return compat.unpack(r, 2, r.n) end
  else
    err = r[2]
  end
  self.db:run("ROLLBACK")
  if errors.is(err) then return nil, err end
  return nil, journal_error(tostring(err))
end

-- Reads key's row for the decision (all columns), or nil.
function Store:row(key)
  return check(self.db:query("SELECT * FROM jobs WHERE key = ?", key))[1]
end

-- Claims key for this handle: decide(row) -> action (see billing.on_claim);
-- when it says "submit", the entry becomes queued and ours, with request and
-- callback_token (kept if it had one). Returns action, row (as read, or as
-- written). An unknown key (the common case) takes one staged statement; a
-- known one is decided inside a transaction of this thread (BEGIN IMMEDIATE:
-- the check and the write it decides cannot interleave with another
-- process's).
local CLAIM_NEW = [[INSERT INTO jobs (key, endpoint, params, state, owner, request, callback_token, created_at,
  updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING]]

-- job: { endpoint, params, request, callback_token } of the submit at hand.
function Store:claim(key, decide, job)
  local t, owner = now(), self.db:owner()
  local function inserted()
    return decide(nil), { key = key, endpoint = job.endpoint, params = job.params, state = "queued", owner = owner,
                          request = job.request, callback_token = job.callback_token, created_at = t, updated_at = t }
  end
  if self.tracker:in_job() then
    local n, err = self.tracker:write(true, CLAIM_NEW, key, job.endpoint, job.params, owner, job.request,
      job.callback_token, t, t)
    if not n then return nil, err end
    if n == 1 then return inserted() end
  end
  return self:transaction(function()
    if check(self.db:run(CLAIM_NEW, key, job.endpoint, job.params, owner, job.request, job.callback_token, t,
      t)) == 1 then
      return inserted()
    end
    local row = self:row(key)
    local action = decide(row)
    if action == "submit" then
      check(self.db:run([[UPDATE jobs SET state = 'queued', owner = ?, request = ?, params = ?,
          callback_token = coalesce(callback_token, ?), task_id = NULL, result = NULL, error = NULL,
          updated_at = ? WHERE key = ?]], owner, job.request, job.params, job.callback_token, t, key))
      row = self:row(key)
    elseif action == "uncertain" and row.state == "sending" then
      -- its owner is gone: what it was sending may have been billed
      check(self.db:run("UPDATE jobs SET state = 'uncertain', owner = NULL, updated_at = ? WHERE key = ?",
        t, key))
      row.state = "uncertain"
    end
    return action, row
  end)
end

-- Is the journal handle owner still open (in any process)? Asked of the
-- lock file it recorded, whatever path this client took to the journal; a
-- dead one's record is removed.
function Store:owner_alive(owner)
  local rows = self.db:query("SELECT lock_path, pid, boot_id FROM owners WHERE id = ?", owner)
  if not rows then return true end -- cannot tell: alive, which never risks a second submit
  local rec = rows[1]
  local alive = self.db:owner_alive(owner, rec and rec.lock_path, rec and rec.pid, rec and rec.boot_id)
  if not alive and rec then self.db:run("DELETE FROM owners WHERE id = ?", owner) end
  return alive
end

-- Every write below that acts on a claimed entry names this handle as its
-- owner: an entry forgotten and claimed again by another client meanwhile
-- is that client's, and is never changed on behalf of the first. They
-- return the number of rows changed (0: the entry is no longer ours).

-- Written before anything else happens with the id (before on_submit). A
-- key submitted without a name of its own is renamed to its task id.
function Store:submitted(key, task_id, new_key)
  return self.tracker:write(true, [[UPDATE jobs SET key = ?, state = 'submitted', task_id = ?, owner = NULL,
    error = NULL, updated_at = ? WHERE key = ? AND owner = ? AND state IN ('queued', 'sending')]],
    new_key or key, task_id, now(), key, self.db:owner())
end

-- A paid task id the journal could not record (submission.lua tried for a
-- while): kept here, in memory, and tried again by _record_unrecorded (at the
-- task's end, and when the client closes), so the id is never lost while the
-- process lives; the caller's error carries it too (err.task_id).
function Store:keep_unrecorded(key, task_id, new_key)
  self.unrecorded = self.unrecorded or {}
  self.unrecorded[task_id] = { key = key, new_key = new_key }
end

-- Tries to record the kept task ids again (task_id: only that one). Returns
-- true when none of them is left unrecorded, or nil and the last error.
function Store:record_unrecorded(task_id)
  local left, last = self.unrecorded, nil
  if not left then return true end
  for id, e in pairs(left) do
    if task_id == nil or id == task_id then
      local n, err = self:submitted(e.key, id, e.new_key)
      if n == 1 then
        left[id] = nil
      else
        last = err or journal_error(("the entry of key %s is no longer this client's"):format(e.new_key))
      end
    end
  end
  if last then return nil, last end
  return true
end

-- Back to queued for another attempt (the server provably did not take it).
function Store:requeue(key)
  return self.tracker:write(true, "UPDATE jobs SET state = 'queued', updated_at = ? WHERE key = ? AND owner = ? "
    .. "AND state IN ('queued', 'sending')", now(), key, self.db:owner())
end

local function error_json(err)
  return core.encode({ kind = err.kind, message = err.message, code = err.code, status = err.status,
                       task_id = err.task_id })
end

-- The submit failed: state is "queued" (nothing billed; may be sent again)
-- or "uncertain", with the error kept.
function Store:failed_submit(key, state, err)
  return self.tracker:write(true, [[UPDATE jobs SET state = ?, owner = NULL, error = ?, updated_at = ?
    WHERE key = ? AND owner = ? AND state IN ('queued', 'sending')]], state, error_json(err), now(), key,
    self.db:owner())
end

-- A queued key this handle no longer works on (its job ended before sending,
-- or the server refused it). An entry of which nothing ever left the machine
-- (no upload recorded, no submit refused) is of no use to anyone and is
-- dropped rather than left behind as a phantom job; so is a placeholder key
-- (a job without a key of its own) that never got a task id.
function Store:release(key, placeholder)
  if placeholder then
    update(self, false, "DELETE FROM jobs WHERE key = ? AND state = 'queued'", key)
    return
  end
  local owner = self.db:owner()
  update(self, false, "DELETE FROM jobs WHERE key = ? AND owner = ? AND state = 'queued' AND error IS NULL "
    .. "AND uploads IS NULL", key, owner)
  update(self, false, "UPDATE jobs SET owner = NULL WHERE key = ? AND owner = ? AND state = 'queued'", key, owner)
end

-- The task ended: its result (succeed) or its error (failed), by task id.
-- Whoever read it (often the shared poller) does not wait; the job that
-- hands the result over settles first (see _settle), so what it returns is
-- what the journal says.
function Store:finished(task_id, result, err)
  if result then
    return update(self, false, [[UPDATE jobs SET state = 'succeed', result = ?, error = NULL, owner = NULL,
      updated_at = ? WHERE task_id = ? AND state <> 'succeed']], core.encode(result), now(), task_id)
  end
  return update(self, false, [[UPDATE jobs SET state = 'failed', error = ?, owner = NULL, updated_at = ?
    WHERE task_id = ? AND state NOT IN ('succeed', 'failed')]], error_json(err), now(), task_id)
end

-- The URLs of a job's uploaded files (and the request that now carries them),
-- so that a resumed job never uploads again.
function Store:set_uploads(key, uploads, request)
  return self.tracker:write(true, "UPDATE jobs SET uploads = ?, request = ?, updated_at = ? WHERE key = ? "
    .. "AND owner = ? AND state = 'queued'", core.encode(uploads), request, now(), key, self.db:owner())
end

-- The URL of a file already uploaded with this content (sha256, bytes) and
-- name suffix to this platform, or nil.
function Store:uploaded(sha256, bytes, suffix, platform)
  local rows = self.db:query("SELECT url FROM uploads WHERE sha256 = ? AND bytes = ? AND suffix = ? AND platform = ?",
    sha256, bytes, suffix, platform)
  return rows and rows[1] and rows[1].url or nil
end

-- Remembers an upload by content (the job goes on without waiting for it).
function Store:remember_upload(sha256, bytes, suffix, platform, url)
  return update(self, false, [[INSERT INTO uploads (sha256, bytes, suffix, platform, url, created_at)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET url = excluded.url, created_at = excluded.created_at]],
    sha256, bytes, suffix, platform, url, now())
end

-- Where a job's video was saved; committed before the job reports it.
function Store:set_path(key, path)
  return update(self, true, "UPDATE jobs SET path = ?, updated_at = ? WHERE key = ?", path, now(), key)
end

-- The row of a task id, or nil.
function Store:by_task(task_id)
  local rows, err = self.db:query("SELECT * FROM jobs WHERE task_id = ? LIMIT 1", task_id)
  if not rows then return nil, journal_error(err) end
  return rows[1]
end

-- true exactly once per task, across processes and restarts.
function Store:first_delivery(task_id)
  local n, err = self.db:run("UPDATE jobs SET delivered = 1 WHERE task_id = ? AND delivered = 0", task_id)
  if not n then return nil, journal_error(err) end
  return n > 0
end

return Store
