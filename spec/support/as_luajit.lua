-- A module loaded as LuaJIT loads it (a `jit` global present while it loads), beside the copy
-- Lua 5.4 loaded: modules that take another path under LuaJIT (a loop the JIT compiles where
-- Lua 5.4 runs a pattern's C loop) are compared on both paths in one run.
return function(name)
  local saved_jit, saved_mod = rawget(_G, "jit"), package.loaded[name]
  rawset(_G, "jit", rawget(_G, "jit") or {})
  package.loaded[name] = nil
  local ok, mod = pcall(require, name)
  rawset(_G, "jit", saved_jit)
  package.loaded[name] = saved_mod
  assert(ok, mod)
  return mod
end
