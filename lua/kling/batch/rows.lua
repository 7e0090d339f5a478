-- A batch row's life, as methods of the batch: launched into its client's engine (fresh,
-- adopted by external id, or tracked by task id), journaled at each step (intent before the
-- create, task id after, end with the charge, files, final), retried by error kind with a
-- new external id, downloaded as soon as its task succeeds. Installed by kling.batch.
-- Its money is its machine's: each attempt's estimate is held under the attempt's ledger key
-- (row#attempt, kept in the journal across restarts) by the engine's lifecycle machine, which
-- settles or releases it at the task's end; this file only gives the key.
local core = require "kling.core"
local billing = require "kling.billing"
local usage = require "kling.money.usage"
local hold = require "kling.money.hold"
local task_mod = require "kling.task"
local local_file = require "kling.local_file"
local names = require "kling.batch.names"
local providers = require "kling.providers"
local download = require "kling.batch.download"
local errors = require "kling.errors"
local output_path = require "kling.output_path"

-- Kinds of a failed attempt that another attempt (a new task) may cure. content_policy
-- never is; validation, auth, quota and unpriced need the manifest or the account changed.
local RETRY = { server = true, network = true, rate_limited = true }
-- Kinds refused before any task existed (fix the manifest or the price catalog; a budget's
-- refusal is held for a later run before these are looked at): reported refused, not journaled
-- as the row's end, so a later run looks again. wait_all counts them so too (kling.task).
local REFUSED = task_mod.REFUSED
-- Kinds that say the account cannot create anything now (keys refused, nothing left to pay
-- with): the run stops creating; the rows stay open for a run after the account is fixed.
local HALT = { auth = true, quota = true }

local function error_record(err)
  if type(err) ~= "table" then
    return { kind = "server", message = tostring(err) }
  end
  return { kind = err.kind, code = err.code, message = err.message and tostring(err.message) or tostring(err),
    http_status = err.http_status, field = err.field }
end

-- The files a succeeded task delivered, each downloaded (kling.task's files: a text- or
-- video-to-audio's audio is its mp3 and its wav, the wav `alt`, priced once by usage.of_outputs).
local function outputs_of(t)
  return t:files()
end

return function(Batch)
  function Batch.priced(_, row, req)
    local r = hold.priced(row.client, req or row.request)
    r.estimate = nil
    return r
  end

  -- The charge of a succeeded attempt from what it delivered, with its client's catalogs (as
  -- its hold would be settled): a quote, or nil and why not.
  function Batch:charge_of(row, outputs)
    return hold.charge(row.client, self:priced(row, row.req), usage.of_outputs(outputs))
  end

  function Batch:journal_row(t, row, extra)
    local rec = { t = t, row = row.id, attempt = row.attempt }
    for k, v in pairs(extra or {}) do
      rec[k] = v
    end
    self:append(rec)
  end

  function Batch.ledger_key(_, row)
    return row.id .. "#" .. row.attempt
  end

  -- ---- launching ----

  -- The request as sent: element names resolved, an external id where the provider keeps them.
  function Batch:prepare(row)
    local client = row.client
    local req = {}
    for k, v in pairs(row.request) do
      req[k] = v
    end
    -- a row's relative file paths are the manifest's, wherever kling run was started
    req = local_file.apply(req, local_file.rebase(client.provider, req, self.manifest_dir))
    if req.element_list ~= nil and self.elements then
      local list, err = self.elements.resolve(req.element_list, { cache = self.element_cache,
        provider = client.provider.name, base_url = client.base_url })
      if not list then
        return nil, err
      end
      req.element_list = list
    end
    local endpoint, err = client:check(req)
    if not endpoint then
      return nil, err
    end
    if row.mode == "fresh" then
      err = self:output_refusal(row, endpoint, req)
      if err then
        return nil, err
      end
    end
    if providers.takes_external_id(client.provider, endpoint) then
      if not row.ext then
        local given = row.request.external_task_id
        row.ext = given and (row.attempt == 1 and given or (given .. "-" .. row.attempt))
          or ("kb-" .. core.random_hex(12))
      end
      req.external_task_id = row.ext
    end
    return req
  end

  -- Why the files a new task of this row would deliver cannot be written (a link, a FIFO or a
  -- directory planted at one of them, or at its .part; kling.output_path), or nil: checked
  -- before the create is sent, so that nothing is paid for an output that would be refused.
  -- A file already at one of them (the output, its .part, its poster frame: names.files) that
  -- the journal does not show this row wrote is someone's: the download would have to take it
  -- for the row's output or destroy it, so the row is refused too. The download checks its
  -- path again (a link may be planted later, a file may appear: never replaced).
  function Batch:output_refusal(row, endpoint, req)
    local def = row.client.provider.endpoints and row.client.provider.endpoints[endpoint]
    local kind = def and def.kind or "video"
    local count = math.min(16, math.max(1, math.floor(tonumber(req.n) or 1)))
    local formats = def and def.formats -- each output as several files (an audio's mp3 and wav)
    for _, rel in ipairs(names.expected(self.name_template, row, kind, count * (formats and #formats or 1),
      formats) or {}) do
      local _, refused = output_path.mkdir_under(self.out, names.dirname(rel) or "")
      refused = refused or output_path.refusal(self.out .. "/" .. rel)
      if refused then
        return errors.validation("output", refused .. " (nothing was sent: remove it, or name the outputs "
          .. "otherwise with --name)")
      end
      if self.claimed[rel] ~= row then
        for _, f in ipairs(names.files(rel, kind)) do
          refused = self:foreign_file(f[1], f[2], self.claimed[rel])
          if refused then
            return errors.validation("output", refused .. " (nothing was sent: move it away, or name the outputs "
              .. "otherwise with --name)")
          end
        end
      end
    end
    return nil
  end

  -- "PATH exists ..." when a regular file is at rel (under DIR) that the journal does not show
  -- this batch wrote there (`owner`: the row whose output rel is, if another's), else nil.
  function Batch:foreign_file(rel, what, owner)
    local path = self.out .. "/" .. rel
    if not download.size_of(path) then
      return nil
    end
    if owner then
      return string.format("%s exists: it is the output of row '%s' (line %d)", path, owner.id, owner.line)
    end
    return string.format("%s exists (%s) and this batch's journal has no record of writing it: an output is "
      .. "never written over a file, nor a file taken for an output", path, what)
  end

  function Batch:launch(row)
    local client, cerr = self:client_for(row)
    if not client then
      if cerr.kind == "auth" then -- no keys for this row's provider: open until there are
        row.error = error_record(cerr)
        return self:park(row, "auth: " .. tostring(cerr.message))
      end
      return self:refuse(row, cerr)
    end
    row.client = client
    local req, err = self:prepare(row)
    if not req then
      return self:refuse(row, err)
    end
    row.req = req
    local e = self:engine_of(client)
    local t
    local key = self:ledger_key(row) -- the attempt's hold (a batch with a budget: the client's ledger)
    row.intent_written = row.mode ~= "fresh"
    if row.mode == "track" then
      t = task_mod.new(client, { id = row.task_id, endpoint = row.endpoint, status = "queued",
        external_task_id = row.ext, request = req, ledger_key = key })
      self:attach(row, t, e)
      e:track(t, { estimate = self.estimate })
    else
      t = e:submit(req, { adopt = row.mode == "adopt" or nil, estimate = self.estimate, key = key })
      self:attach(row, t, e)
    end
    if t.error then -- refused at submit (validation, the budget): it never reaches the engine's loop
      self:ended(t, t.error)
    end
  end

  function Batch:attach(row, t, e)
    row.task, row.st = t, "active"
    self.by_task[t] = row
    self.active = self.active + 1
    e.batch_tasks[t] = true
  end

  -- Engine hooks: the intent is on disk before the create leaves, the task id as soon as
  -- the provider gave it.
  function Batch:on_create(t)
    local row = self.by_task[t]
    if row and not row.intent_written then
      row.intent_written = true
      self:journal_row("intent", row, { ext = t.external_task_id, key = self:ledger_key(row), hash = row.hash })
    end
  end

  function Batch:on_created(t)
    local row = self.by_task[t]
    if row and row.task_id ~= t.id then
      row.task_id, row.endpoint = t.id, t.endpoint
      self:journal_row("created", row, { task_id = t.id, endpoint = t.endpoint, ext = t.external_task_id })
    end
  end

  -- ---- endings ----

  function Batch:detach(t)
    local row = self.by_task[t]
    self.by_task[t] = nil
    for _, s in ipairs(self.engines) do
      s.engine.batch_tasks[t] = nil
    end
    self.active = self.active - 1
    row.task = nil
    return row
  end

  -- Every attempt ends here (from the engine's on_done, or at once when the engine refused
  -- it at submit).
  function Batch:ended(t, err)
    local row = self:detach(t)
    self.budget_blocked = false
    if not err and t.status == "succeeded" then
      return self:succeeded(row, t)
    end
    err = err or t:failure()
    local created = t.id ~= nil
    if err.kind == "timeout" then
      -- The run's deadline or the task's own timeout passed: a task that exists goes on at the
      -- provider; the next run of the same command picks it up (by task id or external id).
      local run_over = self.stopped or (self.deadline_ms and self.now() >= self.deadline_ms - 1000)
      local which = run_over and "the run's deadline (--deadline)" or ("its timeout (--timeout "
        .. (self.opts.timeout or require("kling.client").default_seconds("wait_timeout")) .. " s)")
      return self:park(row, created and ("still running at " .. which .. " (task " .. t.id .. "): the next run "
        .. "picks it up") or ("not started before " .. which))
    end
    if created and not task_mod.TERMINAL[t.status] then
      -- A poll's error ended the wait, not the task (its keys refused, HTTP 401 1002; an answer
      -- it could not read): the task goes on at the provider, held, and is billed when it
      -- succeeds. Journaled failed, it was never downloaded though paid (or, of a retried kind,
      -- created twice); open, the next run polls it again by its id.
      row.error = error_record(err)
      if HALT[err.kind] then
        return self:halt(row, err)
      end
      return self:park(row, err.kind .. ": " .. tostring(err.message) .. " (task " .. t.id .. " goes on at the "
        .. "provider, its reservation kept: the next run polls it again)")
    end
    if err.uncertain and not created then
      return self:uncertain(row, err)
    end
    if not created and err.kind == "budget" then
      if err.code == "no_budget" then
        -- Its currency has no budget: open (not failed) until the batch is given one.
        row.error = error_record(err)
        return self:park(row, "budget: " .. tostring(err.message))
      end
      return self:budget_wait(row, err)
    end
    if not created and REFUSED[err.kind] then
      return self:refuse(row, err)
    end
    if not created and (HALT[err.kind] or (err.kind == "network" and err.unsent)) then
      -- The account cannot create now, or the provider could not be reached after the
      -- machine's own attempts (nothing left the host): not the row's failure, a later run's work.
      return self:halt(row, err)
    end
    return self:attempt_failed(row, t, err)
  end

  -- Refused before any task existed (the row or the price catalog must change): refused in
  -- this run's summary, apart from the rows the provider failed (nothing was sent for it), and
  -- journaled as such so that kling status says the same; not the row's final record, so a
  -- later run looks at it again.
  function Batch:refuse(row, err)
    row.st, row.error = "refused", error_record(err)
    self:journal_row("refused", row, { error = row.error })
    self:event(row, "refused: " .. tostring(err))
  end

  -- The account refused a create (auth, quota), or the provider could not be reached: no
  -- further row is started in this run.
  function Batch:halt(row, err)
    row.error = error_record(err)
    self:park(row, err.kind .. ": " .. tostring(err.message))
    if not self.stopped then
      self.stopped = true
      local reason = "not started: " .. (err.kind == "network" and "the provider could not be reached"
        or ("the provider refused the account (" .. err.kind .. ")")) .. " on row " .. row.id
      for _, r in ipairs(self.queue) do
        self:park(r, reason)
      end
      self.queue = {}
    end
  end

  function Batch:park(row, reason)
    row.st, row.reason = "unfinished", reason
    self:event(row, "unfinished: " .. reason)
  end

  function Batch:budget_wait(row, err)
    if self.active > 0 then
      -- Running rows will settle or release what they hold: try again when one ends.
      self.budget_blocked = true
      table.insert(self.queue, 1, row)
      return
    end
    self:park(row, "budget: " .. tostring(err.message))
  end

  function Batch:finalize(row, state, extra)
    row.st = state
    local rec = { state = state, attempts = row.attempt, task_id = row.task_id }
    for k, v in pairs(extra or {}) do
      rec[k] = v
    end
    self:journal_row("final", row, rec)
  end

  -- Where to look for a task that may exist: the provider's task list when it keeps one
  -- (kling tasks), else the account's own pages (kling tasks cannot list it).
  local function where_to_look(self, row)
    local P = row.client and row.client.provider or providers.get(self:provider_of(row))
    if P and providers.lists_tasks(P) then
      return "check its task list: kling tasks --provider " .. P.name
    end
    return "check the usage or billing page of your " .. (P and P.name or "provider") .. " account for a task "
      .. "created at " .. os.date("!%Y-%m-%d %H:%M UTC") .. "; it keeps no task list kling tasks could read"
  end

  -- The create's fate is unknown. Where the provider looks tasks up by external id the row is
  -- not over: its hold stays, and the next run looks it up again (adopts it: kling.batch.resume);
  -- else it is over, never resent.
  function Batch:uncertain(row, err)
    row.error = error_record(err)
    local msg = row.error.message:gsub("^uncertain: ", "")
    if self:findable(row) then
      row.error.message = "uncertain: " .. msg .. " (its reservation is kept; the next run of this command looks "
        .. "it up again by external_task_id " .. row.ext .. " and never creates a second task)"
      self:journal_row("end", row, { status = "uncertain", error = row.error, ext = row.ext })
      row.st = "uncertain"
    else
      row.error.message = "uncertain: the create's fate is unknown and the provider cannot look it up: " .. msg
        .. " (never resent; " .. where_to_look(self, row) .. ")"
      self:journal_row("end", row, { status = "uncertain", error = row.error, ext = row.ext })
      self:finalize(row, "uncertain")
    end
    self:event(row, row.error.message)
  end

  -- Whether the row's task can be looked up by its external id (its create carried one, and the
  -- provider answers lookups by it).
  function Batch:findable(row)
    local P = row.client and row.client.provider or providers.get(self:provider_of(row))
    return row.ext ~= nil and P ~= nil and P.external_query_path ~= nil and P.capabilities.external_ids == true
  end

  function Batch:attempt_failed(row, t, err)
    row.error = error_record(err)
    self:journal_row("end", row, { status = "failed", task_id = t.id, error = row.error })
    self:after_failure(row)
  end

  -- After a failed attempt (now, or found in the journal on resume): retry or end the row.
  function Batch:after_failure(row)
    local e = row.error or {}
    if RETRY[e.kind] and row.attempt <= self.retries then
      local reason = e.kind .. ": " .. tostring(e.message)
      row.attempt = row.attempt + 1
      row.ext, row.task_id, row.endpoint, row.mode = nil, nil, nil, "fresh"
      self:journal_row("retry", row, { reason = reason })
      row.st, row.not_before = "pending", self.now() + math.min(30000, 1000 * 2 ^ (row.attempt - 2))
      self.queue[#self.queue + 1] = row
      self:event(row, string.format("attempt %d failed (%s): retrying", row.attempt - 1, reason))
      return
    end
    self:finalize(row, "failed", { kind = e.kind })
    self:event(row, "failed: " .. tostring(e.kind) .. ": " .. tostring(e.message))
  end

  -- A succeeded attempt. With a budget its machine has settled the hold already (to the
  -- charge journaled here: the ledger's, t.charge_quote; an unpriced delivery is charged its
  -- reservation, never nothing).
  function Batch:succeeded(row, t)
    local outputs = outputs_of(t)
    local q, qerr = t.charge_quote, nil
    if not q then
      q, qerr = self:charge_of(row, outputs)
    end
    local charge = q and { amount = q.amount, currency = billing.unit(q), rule = q.rule }
      or { unpriced = tostring(qerr and qerr.message or qerr) }
    charge.reported = t.charge ~= nil and tostring(t.charge) or nil
    self:journal_row("end", row, { status = "succeeded", task_id = t.id, charge = charge, outputs = outputs })
    if q and t.billing_error then -- priced, but the budget could not count it: held charged
      self:event(row, "budget: " .. tostring(t.billing_error))
    end
    row.outputs, row.charge = outputs, charge
    self:fetch_outputs(row)
  end

  -- ---- outputs ----

  -- Whether the file at rel (size bytes) is the one this row's download moved there just before
  -- the batch stopped (its "placing" record, written before the move, names it: the same path,
  -- inode and size), so that a crash between the move and its "file" record loses nothing.
  -- (kling.output_path.placed: the inode, not the device).
  local function placed_here(row, n, rel, path)
    local p = row.placing and row.placing[n]
    return p ~= nil and p.path == rel and output_path.placed(path, p.bytes, p.id)
  end

  function Batch:fetch_outputs(row)
    row.st = "download"
    row.pending_files = 0
    local count = #row.outputs
    for n, o in ipairs(row.outputs) do
      local rec = row.files[n]
      local rel = rec and rec.path or names.name(self.name_template, row, n, o, count)
      local path = self.out .. "/" .. rel
      local size = download.size_of(path)
      local owner = self.claimed[rel]
      -- checked before the create with {task_id}, {kind} and {ext} at their longest (kling.batch.names),
      -- again with their values: a provider's task id may be longer, or name the batch's own file
      local refused = not rec and names.path_refusal(self.out, rel)
      if refused then
        row.download_error = "download refused: " .. refused .. " (run the batch again with another --name)"
      elseif owner and owner ~= row then
        -- more outputs than the row asked for, numbered onto another row's name (names.refusal
        -- counts what rows ask for): never taken for this row's, never overwritten
        row.download_error = "download refused: " .. rel .. " is the output of row '" .. owner.id .. "' (line "
          .. owner.line .. "): give the rows names apart (--name '{row}-{id}.{ext}')"
      elseif size then
        -- the journal says this row wrote it (kept), or it was moved there just before a crash;
        -- else it is someone's file (the check before the create saw none, or the name takes
        -- {task_id} or a URL's extension): never taken for the output, never replaced; the task
        -- stays paid for, its output fetched by the run after the file is moved away
        if not rec and placed_here(row, n, rel, path) then
          self:file_done(row, n, o, rel, size)
        elseif not rec then
          row.download_error = "download refused: " .. path .. " exists and this batch's journal has no record of "
            .. "writing it: kept as it is (move it away and run the same command again, or name the outputs "
            .. "otherwise with --name)"
        end
      else
        local made, err = output_path.mkdir_under(self.out, names.dirname(rel) or "") -- never through a link
        if made then
          self.claimed[rel] = row
          row.pending_files = row.pending_files + 1
          self.downloads:add { url = o.url, path = path, row = row, n = n, rel = rel, output = o,
            max_bytes = row.client and row.client.max_download_bytes,
            on_place = function(job, bytes, identity)
              -- on disk before the move: a file found at rel after a crash is the row's only when it is this one
              row.placing[job.n] = { path = job.rel, bytes = bytes, id = identity }
              self:journal_row("placing", row, { n = job.n, path = job.rel, bytes = bytes, id = identity })
            end,
            on_done = function(job, p, bytes, expired)
              self:downloaded(job, p, bytes, expired)
            end }
        else
          row.download_error = "download refused: " .. err
        end
      end
    end
    self:maybe_done(row)
  end

  function Batch:file_done(row, n, o, rel, bytes)
    self.claimed[rel] = row
    row.files[n] = { path = rel, bytes = bytes, kind = o.kind, n = n }
    self:journal_row("file", row, { n = n, path = rel, bytes = bytes, kind = o.kind })
  end

  function Batch:downloaded(job, path, bytes, expired)
    local row = job.row
    row.pending_files = row.pending_files - 1
    if path then
      self:file_done(row, job.n, job.output, job.rel, bytes)
      return self:maybe_done(row)
    end
    if expired and not row.refreshed and row.task_id then
      -- Gateway URLs expire: ask the provider for the task again, for fresh ones.
      row.refreshed = true
      local fresh = row.client:get_task(row.task_id, { endpoint = row.endpoint })
      local outs = fresh and fresh.status == "succeeded" and outputs_of(fresh)
      if outs and #outs == #row.outputs then
        row.outputs, row.refetch = outs, true
        return self:maybe_done(row)
      end
    end
    row.download_error = bytes
    self:maybe_done(row)
  end

  function Batch:maybe_done(row)
    if row.pending_files > 0 or row.st ~= "download" then
      return
    end
    if row.refetch then
      row.refetch = nil
      return self:fetch_outputs(row) -- the files still missing, from the fresh URLs
    end
    if row.download_error then
      return self:park(row, tostring(row.download_error)) -- it says "download failed: ..." itself
    end
    self:finalize(row, "succeeded")
    local files = {}
    for _, f in ipairs(row.files) do
      files[#files + 1] = f.path
    end
    self:event(row, "succeeded (task " .. tostring(row.task_id) .. ") -> " .. table.concat(files, ", "))
  end
end
