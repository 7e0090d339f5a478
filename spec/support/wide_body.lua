-- A create body of n one-item members after its prompt ({"prompt":"x","k0":[0],...}): a million
-- of them is 20 MB that cjson, the duplicate-key sort and the unknown-field check each took
-- seconds over (the gateway refuses it on a scan of its first values).
return function(n)
  local parts = { '{"prompt":"x"' }
  for i = 0, n - 1 do
    parts[#parts + 1] = ',"k' .. i .. '":[' .. i .. "]"
  end
  parts[#parts + 1] = "}"
  return table.concat(parts)
end
