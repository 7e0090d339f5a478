-- The nginx conf this nginx was started with, as the gateway's init reads it in nginx's master
-- (or its one process with master_process off): its path and command line (Linux's /proc), and
-- whether lua_code_cache is off where the gateway's handlers run. nginx tells Lua neither: the
-- conf is read as nginx read it, its includes followed (globs too).
local core = require "kling.core"

local M = {}

-- args() -> this process's command line, as words. After the first start nginx rewrites its
-- title ("nginx: master process nginx -c ..."): the words are read the same.
function M.args()
  local args = {}
  local f = io.open("/proc/self/cmdline", "rb")
  if f then
    for a in f:read("*a"):gmatch("[^%z%s]+") do
      args[#args + 1] = a
    end
    f:close()
  end
  return args
end

-- path(args) -> the conf file nginx read: its -c, else the one nginx was built to read (its
-- --conf-path: Debian's is /etc/nginx/nginx.conf, which its service starts without -c), else
-- nginx's default; relative to the prefix.
function M.path(args)
  local conf
  args = args or M.args()
  for i, a in ipairs(args) do
    if a == "-c" then
      conf = args[i + 1]
    end
  end
  conf = conf or (ngx.config.nginx_configure() or ""):match("%-%-conf%-path=(%S+)") or "conf/nginx.conf"
  if conf:sub(1, 1) ~= "/" then
    conf = ngx.config.prefix() .. conf
  end
  return conf
end

local MAX_CONF = 64 * 1024 * 1024

-- A conf file's text, or nil where there is none; only a regular file is opened (a FIFO at an
-- include's name would block nginx's start), and one past MAX_CONF is not followed (an error:
-- the caller's pcall takes it as a conf it cannot read).
function M.read(path)
  local text = core.read_regular(path, MAX_CONF + 1)
  if text and #text > MAX_CONF then
    error("the nginx conf " .. path .. " is over " .. MAX_CONF .. " bytes", 0)
  end
  return text
end

-- The files an include names (a glob, as nginx expands it), in nginx's order.
local function expand(pattern)
  if not pattern:find("[*?[]") then
    return { pattern }
  end
  local ok, ffi = pcall(require, "ffi")
  if not ok then
    return {}
  end
  if not pcall(ffi.typeof, "kling_glob_t") then
    ffi.cdef [[
      typedef struct { size_t gl_pathc; char **gl_pathv; size_t gl_offs; int gl_flags;
        void *f1, *f2, *f3, *f4, *f5; } kling_glob_t;
      int glob(const char *pattern, int flags, void *errfunc, kling_glob_t *pglob);
      void globfree(kling_glob_t *pglob);
    ]]
  end
  local g = ffi.new("kling_glob_t")
  local out = {}
  if ffi.C.glob(pattern, 0, nil, g) == 0 then
    for i = 0, tonumber(g.gl_pathc) - 1 do
      out[#out + 1] = ffi.string(g.gl_pathv[i])
    end
  end
  ffi.C.globfree(g)
  return out
end

-- Skips a *_by_lua_block's Lua body from s[i] (just past its "{"): Lua's strings, long strings
-- and comments hold braces of their own. -> the index past its closing "}", the lines it took
local function lua_body(s, i)
  local depth, lines = 1, 0
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\n" then
      lines = lines + 1
      i = i + 1
    elseif c == "{" then
      depth, i = depth + 1, i + 1
    elseif c == "}" then
      depth, i = depth - 1, i + 1
      if depth == 0 then
        return i, lines
      end
    elseif c == "'" or c == '"' then
      local j = i + 1
      while j <= #s and s:sub(j, j) ~= c and s:sub(j, j) ~= "\n" do
        j = j + (s:sub(j, j) == "\\" and 2 or 1)
      end
      i = j + 1
    elseif s:find("^%[=*%[", i) or s:find("^%-%-%[=*%[", i) then
      local open = s:match("^%-?%-?%[(=*)%[", i)
      local close = s:find("]" .. open .. "]", i, true)
      local stop = close and (close + #open + 2) or (#s + 1)
      lines = lines + select(2, s:sub(i, stop - 1):gsub("\n", ""))
      i = stop
    elseif s:find("^%-%-", i) then
      i = (s:find("\n", i, true) or #s + 1)
    else
      i = i + 1
    end
  end
  return i, lines
end

-- tokens(text, file, out) appends {word, at = "file:line"} of one conf file to out; a
-- *_by_lua_block's body is one token {lua = its text}, its directive then complete.
local function tokens(text, file, out)
  local i, line = 1, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\n" then
      line, i = line + 1, i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif c == "#" then
      i = text:find("\n", i, true) or #text + 1
    elseif c == "{" or c == "}" or c == ";" then
      out[#out + 1] = { word = c, at = file .. ":" .. line }
      i = i + 1
    else
      local word, j
      if c == '"' or c == "'" then
        j = i + 1
        while j <= #text and text:sub(j, j) ~= c do
          j = j + (text:sub(j, j) == "\\" and 2 or 1)
        end
        word, j = text:sub(i + 1, j - 1), j + 1
      else
        j = text:find("[%s{};\"'#]", i) or #text + 1
        word = text:sub(i, j - 1)
      end
      out[#out + 1] = { word = word, at = file .. ":" .. line }
      i = j
      if word:find("_by_lua_block$") then
        local open = text:find("{", i, true)
        if open then
          line = line + select(2, text:sub(i, open):gsub("\n", ""))
          local stop, lines = lua_body(text, open + 1)
          out[#out + 1] = { lua = text:sub(open + 1, stop - 2), at = file .. ":" .. line }
          line, i = line + lines, stop
        end
      end
    end
  end
end

-- The conf's tokens, its includes in place (relative to the conf's directory, as nginx reads
-- them); an include nesting past 16 files deep is not followed (nginx refuses such a loop).
local function conf_tokens(path, dir, out, depth)
  local text = M.read(path)
  if not text or depth > 16 then
    return out
  end
  local mine = {}
  tokens(text, path, mine)
  local n = 1
  while n <= #mine do
    local t = mine[n]
    local arg, semi = mine[n + 1], mine[n + 2]
    local starts = n == 1 or mine[n - 1].word == ";" or mine[n - 1].word == "{" or mine[n - 1].word == "}"
      or mine[n - 1].lua
    if starts and t.word == "include" and arg and arg.word and semi and semi.word == ";" then
      local name = arg.word:sub(1, 1) == "/" and arg.word or (dir .. arg.word)
      for _, file in ipairs(expand(name)) do
        conf_tokens(file, dir, out, depth + 1)
      end
      n = n + 3
    else
      out[#out + 1] = t
      n = n + 1
    end
  end
  return out
end

-- code_cache_off(path) -> nil | "file:line": where a `lua_code_cache off` the gateway's
-- handlers run under is (in the http {} around them, their server {} or their location; none
-- set back on nearer). A location of another's with it off is no business of the gateway's: each
-- of its requests runs init_by_lua in a VM of its own, which sets nothing up (kling.gateway init).
-- A handler is a *_by_lua_block naming kling.gateway; one in a *_by_lua_file is not seen (the
-- gateway then refuses its requests instead).
function M.code_cache_off(path)
  path = path or M.path()
  local dir = path:match("^(.*/)") or ""
  local toks = conf_tokens(path, dir, {}, 0)
  local root = { cache = nil }
  local block, words, handlers = root, {}, {}
  for _, t in ipairs(toks) do
    if t.lua then
      if t.lua:find("kling.gateway", 1, true) and block ~= root and block.name ~= "http" then
        handlers[#handlers + 1] = block
      end
      words = {}
    elseif t.word == "{" then
      block = { parent = block, name = words[1] }
      words = {}
    elseif t.word == "}" then
      block = block.parent or root
      words = {}
    elseif t.word == ";" then
      if words[1] == "lua_code_cache" and (words[2] == "off" or words[2] == "on") then
        block.cache = { off = words[2] == "off", at = words.at }
      end
      words = {}
    else
      if #words == 0 then
        words.at = t.at
      end
      words[#words + 1] = t.word
    end
  end
  for _, b in ipairs(handlers) do
    while b and not b.cache do
      b = b.parent
    end
    if b and b.cache.off then
      return b.cache.at
    end
  end
  return nil
end

return M
