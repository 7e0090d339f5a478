/* kling.core codec functions: base64 (standard and url-safe), HMAC-SHA256,
 * SHA-256 hex, random hex, constant-time compare and HS256 JWTs, over the
 * pure implementations in src/pure/codec.c and src/pure/jwt.c. Scratch
 * buffers are Lua userdata so that a raising push cannot leak them. */
#include "kling.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "codec.h"
#include "jwt.h"

/* Upper bound for random_hex: tokens and ids, not bulk randomness. */
#define RANDOM_MAX_BYTES 1024

static int b64encode(lua_State *L, int url) {
    size_t n, olen;
    const char *s = luaL_checklstring(L, 1, &n);
    char *buf;
    olen = kling_b64_encoded_len(n, url);
    if (olen == 0 && n != 0) {
        return luaL_argerror(L, 1, "too long to encode");
    }
    buf = lua_newuserdata(L, olen + 1);
    kling_b64_encode((const unsigned char *)s, n, buf, url);
    lua_pushlstring(L, buf, olen);
    return 1;
}

static int b64decode(lua_State *L, int url) {
    size_t n, olen = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char *buf = lua_newuserdata(L, kling_b64_decoded_max(n));
    if (kling_b64_decode(s, n, buf, &olen, url) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, url ? "b64url_decode: not valid url-safe base64"
                              : "b64decode: not valid base64");
        return 2;
    }
    lua_pushlstring(L, (const char *)buf, olen);
    return 1;
}

static int l_b64encode(lua_State *L) { return b64encode(L, 0); }
static int l_b64url_encode(lua_State *L) { return b64encode(L, 1); }
static int l_b64decode(lua_State *L) { return b64decode(L, 0); }
static int l_b64url_decode(lua_State *L) { return b64decode(L, 1); }

static int l_hmac_sha256(lua_State *L) {
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[KLING_SHA256_LEN];
    if (kling_hmac_sha256(key, klen, msg, mlen, mac) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "hmac_sha256: libcrypto failed");
        return 2;
    }
    lua_pushlstring(L, (const char *)mac, sizeof(mac));
    OPENSSL_cleanse(mac, sizeof(mac));
    return 1;
}

static int l_sha256_hex(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char md[KLING_SHA256_LEN];
    char hex[2 * KLING_SHA256_LEN + 1];
    if (kling_sha256(s, n, md) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, "sha256_hex: libcrypto failed");
        return 2;
    }
    kling_hex(md, sizeof(md), hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_random_hex(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char *raw;
    char *hex;
    if (n < 1 || n > RANDOM_MAX_BYTES) {
        return luaL_argerror(L, 1, "nbytes must be between 1 and 1024");
    }
    raw = lua_newuserdata(L, (size_t)n);
    hex = lua_newuserdata(L, 2 * (size_t)n + 1);
    if (RAND_bytes(raw, (int)n) != 1) {
        lua_pushnil(L);
        lua_pushstring(L, "random_hex: RAND_bytes failed (no entropy source)");
        return 2;
    }
    kling_hex(raw, (size_t)n, hex);
    lua_pushlstring(L, hex, 2 * (size_t)n);
    return 1;
}

static int l_ct_equal(lua_State *L) {
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, kling_ct_equal(a, alen, b, blen));
    return 1;
}

static int l_jwt_hs256(lua_State *L) {
    size_t aklen, sklen, cap, toklen = 0;
    const char *ak = luaL_checklstring(L, 1, &aklen);
    const char *sk = luaL_checklstring(L, 2, &sklen);
    lua_Integer now_s = luaL_checkinteger(L, 3);
    lua_Integer ttl_s = luaL_checkinteger(L, 4);
    enum kling_jwt_status st;
    char *tok;
    if (aklen == 0) return luaL_argerror(L, 1, "access_key must not be empty");
    if (sklen == 0) return luaL_argerror(L, 2, "secret_key must not be empty");
    if (ttl_s <= 0) return luaL_argerror(L, 4, "ttl_s must be a positive number of seconds");
    cap = kling_jwt_size(aklen);
    if (cap == 0) return luaL_argerror(L, 1, "access_key is too long");
    tok = lua_newuserdata(L, cap);
    st = kling_jwt_hs256(ak, aklen, (const unsigned char *)sk, sklen, (int64_t)now_s,
                         (int64_t)ttl_s, tok, cap, &toklen);
    if (st == KLING_JWT_ERANGE) {
        return luaL_argerror(L, 3, "now_s + ttl_s and now_s - 5 must fit in 64 bits");
    }
    if (st != KLING_JWT_OK) {
        lua_pushnil(L);
        lua_pushfstring(L, "jwt_hs256: %s", kling_jwt_strerror(st));
        return 2;
    }
    lua_pushlstring(L, tok, toklen);
    return 1;
}

static const luaL_Reg codec_funcs[] = {
    {"b64encode", l_b64encode},
    {"b64decode", l_b64decode},
    {"b64url_encode", l_b64url_encode},
    {"b64url_decode", l_b64url_decode},
    {"hmac_sha256", l_hmac_sha256},
    {"sha256_hex", l_sha256_hex},
    {"random_hex", l_random_hex},
    {"ct_equal", l_ct_equal},
    {"jwt_hs256", l_jwt_hs256},
    {NULL, NULL}
};

void kling_open_codec(lua_State *L) {
    luaL_setfuncs(L, codec_funcs, 0);
}
