/* kling.auth: the credentials of one client, kept in C memory so that they
 * never show up in a Lua table, a log line or an error. JWT mode signs a
 * token with the secret key, caches it and renews it RENEW_S before expiry;
 * api_key mode hands the key out as the Bearer token. Secrets and tokens are
 * wiped (OPENSSL_cleanse) when replaced and when the userdata is collected. */
#include "kling.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "jwt.h"

#define AUTH_MT "kling.auth"
#define TTL_S 1800   /* Kling's documented token lifetime */
#define RENEW_S 300  /* renew this long before exp: requests in flight stay valid */

enum auth_kind { AUTH_JWT, AUTH_API_KEY };

struct auth {
    enum auth_kind kind;
    char *ak;            /* access key (JWT) */
    size_t aklen;
    char *secret;        /* secret key (JWT) or API key */
    size_t secretlen;
    char *token;         /* cached JWT, NUL-terminated; NULL when none */
    size_t tokcap;
    int64_t nbf, exp;    /* the cached token's validity */
};

/* Wipes and frees one secret buffer. */
static void wipe(char **p, size_t n) {
    if (*p != NULL) {
        OPENSSL_cleanse(*p, n);
        free(*p);
        *p = NULL;
    }
}

static void drop_token(struct auth *a) {
    wipe(&a->token, a->tokcap);
    a->tokcap = 0;
}

static struct auth *check_auth(lua_State *L) {
    struct auth *a = luaL_checkudata(L, 1, AUTH_MT);
    if (a->secret == NULL) {
        luaL_error(L, "kling.auth: used after it was collected");
    }
    return a;
}

static char *copy_secret(lua_State *L, const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p == NULL) {
        luaL_error(L, "kling.auth: out of memory");
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* A Bearer value goes into an HTTP header: CR, LF or spaces would let it
 * inject headers or be split. */
static int header_safe(const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* auth{access_key=, secret_key=} or auth{api_key=} */
static int l_auth(lua_State *L) {
    size_t aklen = 0, sklen = 0, keylen = 0;
    const char *ak, *sk, *key;
    struct auth *a;
    luaL_checktype(L, 1, LUA_TTABLE);
    ak = kling_optstr(L, 1, "access_key", &aklen);
    sk = kling_optstr(L, 1, "secret_key", &sklen);
    key = kling_optstr(L, 1, "api_key", &keylen);
    if (key != NULL && (ak != NULL || sk != NULL)) {
        return luaL_error(L, "kling.auth: give either api_key or access_key + secret_key, not both");
    }
    if (key == NULL && (ak == NULL || sk == NULL)) {
        return luaL_error(L, "kling.auth: %s is required (or give api_key instead)",
                          ak == NULL ? "access_key" : "secret_key");
    }
    if (key != NULL && (keylen == 0 || !header_safe(key, keylen))) {
        return luaL_error(L, "kling.auth: api_key must be non-empty printable ASCII without spaces");
    }
    /* The access key goes into the token's claims as a JSON string, unescaped: a quote or a
     * backslash would change the claims. A space, a control byte (a key read from a file with
     * its newline) or a stray byte in either key is a copy-paste mistake that would only show
     * as the provider's "invalid signature". */
    if (key == NULL && (aklen == 0 || !header_safe(ak, aklen) || memchr(ak, '"', aklen) != NULL
                        || memchr(ak, '\\', aklen) != NULL)) {
        return luaL_error(L, "kling.auth: access_key must be non-empty printable ASCII without spaces, quotes or "
                             "backslashes");
    }
    if (key == NULL && (sklen == 0 || !header_safe(sk, sklen))) {
        return luaL_error(L, "kling.auth: secret_key must be non-empty printable ASCII without spaces");
    }
    if (key == NULL && kling_jwt_size(aklen) == 0) {
        return luaL_error(L, "kling.auth: access_key is too long");
    }
    /* The metatable goes on before any allocation: __gc frees whatever was
     * copied if a later step raises. */
    a = lua_newuserdata(L, sizeof(*a));
    memset(a, 0, sizeof(*a));
    luaL_setmetatable(L, AUTH_MT);
    if (key != NULL) {
        a->kind = AUTH_API_KEY;
        a->secretlen = keylen;
        a->secret = copy_secret(L, key, keylen);
    } else {
        a->kind = AUTH_JWT;
        a->aklen = aklen;
        a->ak = copy_secret(L, ak, aklen);
        a->secretlen = sklen;
        a->secret = copy_secret(L, sk, sklen);
    }
    return 1;
}

/* a:bearer([now_s]) -> "Bearer <token>" */
static int l_bearer(lua_State *L) {
    struct auth *a = check_auth(L);
    int64_t now = (int64_t)luaL_optinteger(L, 2, (lua_Integer)time(NULL));
    enum kling_jwt_status st;
    size_t len;
    if (a->kind == AUTH_API_KEY) {
        lua_pushfstring(L, "Bearer %s", a->secret);
        return 1;
    }
    /* Reuse while now is inside [nbf, exp - RENEW_S); a clock that went back
     * before nbf gets a fresh token too. exp >= INT64_MIN + TTL_S, so
     * exp - RENEW_S cannot overflow. */
    if (a->token == NULL || now < a->nbf || now >= a->exp - RENEW_S) {
        drop_token(a);
        a->tokcap = kling_jwt_size(a->aklen);
        a->token = malloc(a->tokcap);
        if (a->token == NULL) {
            a->tokcap = 0;
            return luaL_error(L, "kling.auth: out of memory");
        }
        st = kling_jwt_hs256(a->ak, a->aklen, (const unsigned char *)a->secret, a->secretlen, now,
                             TTL_S, a->token, a->tokcap, &len);
        if (st != KLING_JWT_OK) {
            drop_token(a);
            if (st == KLING_JWT_ERANGE) {
                return luaL_argerror(L, 2, "now_s is out of range for a JWT");
            }
            lua_pushnil(L);
            lua_pushfstring(L, "kling.auth: %s", kling_jwt_strerror(st));
            return 2;
        }
        a->nbf = now - KLING_JWT_SKEW_S;
        a->exp = now + TTL_S;
    }
    lua_pushfstring(L, "Bearer %s", a->token);
    return 1;
}

/* a:invalidate(): the server refused the token (the dialect says it expired); sign anew. */
static int l_invalidate(lua_State *L) {
    drop_token(check_auth(L));
    return 0;
}

/* Secrets shorter than this are not scrubbed: replacing every "k" of an answer would wreck it. */
#define SCRUB_MIN 8

/* The first occurrence of needle in [h, h + hn), or NULL (memmem is not C99). */
static const char *find_bytes(const char *h, size_t hn, const char *needle, size_t nn) {
    size_t i;
    if (nn == 0 || hn < nn) return NULL;
    for (i = 0; i + nn <= hn; i++) {
        if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0) return h + i;
    }
    return NULL;
}

/* a:scrub(text) -> text with every occurrence of this client's access key, secret (or API key)
 * and current token replaced by "[redacted]": an answer that echoes a credential back (a 401
 * saying "invalid key <key>") would otherwise carry it into errors, journals and reports. The
 * same string when none occurs (no copy). Secrets stay in C: Lua never gets them to compare. */
static int l_scrub(lua_State *L) {
    struct auth *a = check_auth(L);
    size_t n, i, k;
    const char *s = luaL_checklstring(L, 2, &n);
    const char *secrets[3];
    size_t lens[3];
    int count = 0, any = 0;
    luaL_Buffer b;
    if (a->token != NULL) {
        secrets[count] = a->token;
        lens[count++] = strlen(a->token);
    }
    if (a->secret != NULL && a->secretlen >= SCRUB_MIN) {
        secrets[count] = a->secret;
        lens[count++] = a->secretlen;
    }
    if (a->ak != NULL && a->aklen >= SCRUB_MIN) {
        secrets[count] = a->ak;
        lens[count++] = a->aklen;
    }
    for (k = 0; k < (size_t)count; k++) {
        if (find_bytes(s, n, secrets[k], lens[k]) != NULL) any = 1;
    }
    if (!any) {
        lua_settop(L, 2);
        return 1;
    }
    luaL_buffinit(L, &b);
    i = 0;
    while (i < n) {
        int hit = 0;
        for (k = 0; k < (size_t)count; k++) { /* longest first: the token, then the keys */
            if (lens[k] <= n - i && memcmp(s + i, secrets[k], lens[k]) == 0) {
                luaL_addstring(&b, "[redacted]");
                i += lens[k];
                hit = 1;
                break;
            }
        }
        if (!hit) {
            luaL_addchar(&b, s[i]);
            i++;
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_kind(lua_State *L) {
    struct auth *a = check_auth(L);
    lua_pushstring(L, a->kind == AUTH_JWT ? "jwt" : "api_key");
    return 1;
}

/* Names the kind only: never a key, a secret or a token. */
static int l_tostring(lua_State *L) {
    struct auth *a = luaL_checkudata(L, 1, AUTH_MT);
    lua_pushfstring(L, AUTH_MT "(%s)", a->kind == AUTH_JWT ? "jwt" : "api_key");
    return 1;
}

static int l_gc(lua_State *L) {
    struct auth *a = luaL_checkudata(L, 1, AUTH_MT);
    drop_token(a);
    wipe(&a->ak, a->aklen);
    wipe(&a->secret, a->secretlen);
    return 0;
}

static const luaL_Reg auth_methods[] = {
    {"bearer", l_bearer},
    {"scrub", l_scrub},
    {"invalidate", l_invalidate},
    {"kind", l_kind},
    {NULL, NULL}
};

static const luaL_Reg auth_meta[] = {
    {"__tostring", l_tostring},
    {"__gc", l_gc},
    {NULL, NULL}
};

void kling_open_auth(lua_State *L) {
    kling_new_class(L, AUTH_MT, auth_meta, auth_methods);
    lua_pushcfunction(L, l_auth);
    lua_setfield(L, -2, "auth");
}
