-- Images of a given size for specs: only the headers the size rules read (a PNG's signature
-- and IHDR, a JPEG's SOI, APP0 and SOF0), as bytes.
local M = {}

local function u32(n)
  return string.char(n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
end

function M.png(w, h)
  return "\137PNG\r\n\26\n" .. u32(13) .. "IHDR" .. u32(w) .. u32(h) .. "\8\6\0\0\0" .. u32(0)
end

function M.jpeg(w, h)
  local app0 = "\255\224\0\16JFIF\0\1\1\0\0\1\0\1\0\0"
  local sof0 = "\255\192\0\17\8" .. string.char(h >> 8, h & 255, w >> 8, w & 255) .. "\3\1\34\0\2\17\1\3\17\1"
  return "\255\216" .. app0 .. sof0 .. "\255\217"
end

return M
