/* The libcurl multi driver: userdata `kling.http`, one CURLM per client, one
 * thread, any number of transfers in flight. Easy handles are recycled (a free
 * list) and connections stay in the multi's cache, so requests to one host reuse
 * a kept-alive connection. Nothing here calls into Lua from a libcurl callback,
 * so a Lua error can never unwind through libcurl. */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define KH_MT "kling.http"
#define KH_FREE_MAX 64                      /* recycled transfers kept per client */
#define KH_KEEP_CAP ((size_t)64 * 1024)     /* buffer memory kept by a recycled transfer */
#define KH_DEFAULT_CONNECT_MS 10000L
#define KH_DEFAULT_TIMEOUT_MS 60000L
#define KH_DEFAULT_MAX_BODY ((lua_Integer)16 * 1024 * 1024)
#define KH_MAX_REDIRS 10L
/* Connections a client keeps open (busy and idle). libcurl's default grows with
 * the transfers ever added (4 each): a burst of requests (or, with a libcurl
 * older than 7.80, every create on its own fresh connection) filled the cache
 * with idle TLS connections, about 45 KiB of OpenSSL state each. 64 is the
 * engine's default number of requests in flight: each finds a kept-alive one. */
#define KH_DEFAULT_MAX_CONNECTIONS 64

typedef struct {
    CURLM *multi;
    CURLSH *share; /* TLS sessions and DNS answers shared by every transfer of this client */
    kh_list active, done, free;
    kh_xfer *building; /* being set up by start(); owned here so that a raise cannot leak it */
    lua_Integer next_id;
    char *user_agent, *ca_file;
    long connect_timeout_ms, timeout_ms;
    size_t max_body;
    int no_capath; /* CA certificates come from one file: no CA directory (see set_options) */
    int tickets;   /* TLS 1.3 tickets kept resumable (http_tickets.c) */
    int closed;
} kh_client;

/* libcurl's global init, done once per process. pthread_once makes it safe
 * even with a libcurl built without CURL_VERSION_THREADSAFE; the result is
 * written only inside the once-routine. */
static pthread_once_t kh_once = PTHREAD_ONCE_INIT;
static CURLcode kh_init_rc = CURLE_FAILED_INIT;

static void kh_global_init(void) {
    kh_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void global_init(lua_State *L) {
    if (pthread_once(&kh_once, kh_global_init) != 0) {
        luaL_error(L, "kling.http: pthread_once failed");
    }
    if (kh_init_rc != CURLE_OK) {
        luaL_error(L, "kling.http: curl_global_init failed: %s", curl_easy_strerror(kh_init_rc));
    }
}

static lua_Integer mono_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0; /* cannot happen with CLOCK_MONOTONIC; a poll then just waits its slice */
    }
    return (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- transfers ---------------------------------------------------------- */

static void xfer_destroy(kh_xfer *x) {
    if (x->out) {
        fclose(x->out);
    }
    curl_slist_free_all(x->headers_out);
    if (x->easy) {
        curl_easy_cleanup(x->easy);
    }
    free(x->body.data);
    free(x->head.data);
    free(x);
}

/* Make a transfer that is on no list and not in the multi reusable. */
static void xfer_recycle(kh_client *c, kh_xfer *x) {
    if (c->free.count >= KH_FREE_MAX) {
        xfer_destroy(x);
        return;
    }
    if (x->out) {
        fclose(x->out); /* a cancelled download: the caller removes its temp file */
        x->out = NULL;
    }
    curl_slist_free_all(x->headers_out);
    x->headers_out = NULL;
    kh_buf_release(&x->body, KH_KEEP_CAP);
    kh_buf_release(&x->head, KH_KEEP_CAP);
    curl_easy_reset(x->easy); /* options only: the multi keeps the connections */
    x->id = 0;
    x->has_output = 0;
    x->status = 0;
    x->max_output = 0;
    x->out_bytes = x->rx_bytes = x->upload_bytes = x->total_us = 0;
    x->too_large = x->oom = x->out_errno = 0;
    x->sends = x->resend_refused = 0;
    x->rx_at_send = 0;
    x->code = CURLE_OK;
    x->request_size = 0;
    x->errbuf[0] = '\0';
    x->state = KH_FREE;
    kh_list_push(&c->free, x);
}

/* A transfer in state KH_BUILDING, held in c->building. Raises on OOM. */
static kh_xfer *xfer_take(lua_State *L, kh_client *c) {
    kh_xfer *x = c->free.first;
    if (c->building) { /* left over by a start() that raised: reuse it */
        x = c->building;
        c->building = NULL;
        xfer_recycle(c, x);
        x = c->free.first;
    }
    if (x) {
        kh_list_unlink(&c->free, x);
    } else {
        x = calloc(1, sizeof *x);
        if (!x) {
            luaL_error(L, "kling.http: out of memory");
        }
        x->easy = curl_easy_init();
        if (!x->easy) {
            free(x);
            luaL_error(L, "kling.http: curl_easy_init failed");
        }
    }
    x->state = KH_BUILDING;
    c->building = x;
    return x;
}

static kh_xfer *find_xfer(kh_list *list, lua_Integer id) {
    kh_xfer *x;
    for (x = list->first; x; x = x->next) {
        if (x->id == id) {
            return x;
        }
    }
    return NULL;
}

/* ---- the client --------------------------------------------------------- */

static kh_client *check_client(lua_State *L) {
    kh_client *c = luaL_checkudata(L, 1, KH_MT);
    if (c->closed) {
        luaL_error(L, "kling.http: client is closed");
    }
    return c;
}

static void client_close(kh_client *c) {
    kh_xfer *x;
    if (c->closed) {
        return;
    }
    c->closed = 1;
    /* libcurl's order: remove every easy handle from the multi, clean them up,
     * then the multi. A failed remove cannot be acted on while tearing down. */
    while ((x = c->active.first) != NULL) {
        kh_list_unlink(&c->active, x);
        if (c->multi) {
            (void)curl_multi_remove_handle(c->multi, x->easy);
        }
        xfer_destroy(x);
    }
    while ((x = c->done.first) != NULL) {
        kh_list_unlink(&c->done, x);
        xfer_destroy(x);
    }
    while ((x = c->free.first) != NULL) {
        kh_list_unlink(&c->free, x);
        xfer_destroy(x);
    }
    if (c->building) {
        xfer_destroy(c->building);
        c->building = NULL;
    }
    if (c->multi) {
        (void)curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
    if (c->share) { /* after every easy handle using it is gone */
        (void)curl_share_cleanup(c->share);
        c->share = NULL;
    }
    free(c->user_agent);
    free(c->ca_file);
    c->user_agent = c->ca_file = NULL;
}

/* Positive integer field `name` of the table at idx, or def when absent. */
static lua_Integer opt_positive(lua_State *L, int idx, const char *name, lua_Integer def,
                                lua_Integer max) {
    lua_Integer v = def;
    kling_rawfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        if (lua_type(L, -1) == LUA_TNUMBER) {
            v = lua_tointegerx(L, -1, &ok);
        }
        if (!ok || v <= 0 || v > max) {
            luaL_error(L, "kling.http: field '%s' must be an integer between 1 and %d", name, (int)max);
        }
    }
    lua_pop(L, 1);
    return v;
}

static char *dup_or_raise(lua_State *L, const char *s) {
    char *d;
    if (!s) {
        return NULL;
    }
    d = strdup(s);
    if (!d) {
        luaL_error(L, "kling.http: out of memory");
    }
    return d;
}

/* The CA bundle libcurl was built to use when none is given, or NULL. */
static const char *default_ca_file(void) {
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
#if LIBCURL_VERSION_NUM >= 0x074600
    if (info && info->age >= CURLVERSION_SEVENTH) {
        return info->cainfo;
    }
#endif
    (void)info;
    return NULL;
}

static const char *const client_fields[] = {
    "user_agent", "ca_file", "connect_timeout_ms", "timeout_ms", "max_body", "max_connections", NULL,
};

/* The fields of a request (start{}, request{}): read_req and build_headers. */
static const char *const request_fields[] = {
    "method", "url", "body", "headers", "output", "max_output", "timeout_ms", "connect_timeout_ms", "follow", NULL,
};

/* A typo ("timeout" for "timeout_ms") would otherwise be ignored silently.
 * `what` names the table ("options", "request") in the error, with the known fields. */
static void check_known_fields(lua_State *L, int idx, const char *what, const char *const *known) {
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int i, found = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t klen;
            const char *k = lua_tolstring(L, -1, &klen);
            for (i = 0; known[i]; i++) {
                if (kling_is_name(k, klen, known[i])) {
                    found = 1;
                    break;
                }
            }
            if (!found) {
                luaL_Buffer b;
                kling_push_quoted(L, k, klen);
                luaL_buffinit(L, &b);
                for (i = 0; known[i]; i++) {
                    if (i > 0) {
                        luaL_addstring(&b, ", ");
                    }
                    luaL_addstring(&b, known[i]);
                }
                luaL_pushresult(&b);
                kling_push_near(L, k, klen, known);
                luaL_error(L, "kling.http: %s: unknown field %s%s (known: %s)", what, lua_tostring(L, -3),
                           lua_tostring(L, -1), lua_tostring(L, -2));
            }
        } else {
            luaL_error(L, "kling.http: %s must be a table with string keys", what);
        }
    }
}

static int l_new(lua_State *L) {
    const char *ua, *ca;
    lua_Integer connect_ms, timeout_ms, max_body, max_conns;
    kh_client *c;
    global_init(L);
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_known_fields(L, 1, "options", client_fields);
    ua = kling_optstr(L, 1, "user_agent", NULL);
    ca = kling_optstr(L, 1, "ca_file", NULL);
    connect_ms = opt_positive(L, 1, "connect_timeout_ms", KH_DEFAULT_CONNECT_MS, INT_MAX);
    timeout_ms = opt_positive(L, 1, "timeout_ms", KH_DEFAULT_TIMEOUT_MS, INT_MAX);
    max_body = opt_positive(L, 1, "max_body", KH_DEFAULT_MAX_BODY, INT_MAX);
    max_conns = opt_positive(L, 1, "max_connections", KH_DEFAULT_MAX_CONNECTIONS, 100000);

    c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, KH_MT); /* from here on __gc frees whatever is set */
    c->connect_timeout_ms = (long)connect_ms;
    c->timeout_ms = (long)timeout_ms;
    c->max_body = (size_t)max_body;
    if (ua) {
        c->user_agent = dup_or_raise(L, ua);
    } else {
        const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
        lua_pushfstring(L, "lua-kling/%s libcurl/%s", KLING_VERSION, info ? info->version : "unknown");
        c->user_agent = dup_or_raise(L, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    c->ca_file = dup_or_raise(L, ca);
    c->no_capath = ca != NULL || default_ca_file() != NULL;
    c->tickets = kh_tickets_usable();
    c->multi = curl_multi_init();
    if (!c->multi) {
        return luaL_error(L, "kling.http: curl_multi_init failed");
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)max_conns) != CURLM_OK) {
        return luaL_error(L, "kling.http: curl_multi_setopt(CURLMOPT_MAXCONNECTS) failed");
    }
    /* Every new connection (a burst beyond the idle ones, a reconnect) resumes
     * the client's TLS session instead of a full handshake through the shared
     * session cache. One thread drives every handle, so no lock callbacks. */
    c->share = curl_share_init();
    if (!c->share || curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        return luaL_error(L, "kling.http: curl_share_init failed");
    }
    return 1;
}

static int l_gc(lua_State *L) {
    client_close(luaL_checkudata(L, 1, KH_MT));
    return 0;
}

static int l_close(lua_State *L) {
    client_close(luaL_checkudata(L, 1, KH_MT));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_tostring(lua_State *L) {
    kh_client *c = luaL_checkudata(L, 1, KH_MT);
    if (c->closed) {
        lua_pushstring(L, "kling.http (closed)");
    } else {
        lua_pushfstring(L, "kling.http (%d pending)", (int)(c->active.count + c->done.count));
    }
    return 1;
}

static int l_pending(lua_State *L) {
    kh_client *c = check_client(L);
    lua_pushinteger(L, (lua_Integer)(c->active.count + c->done.count));
    return 1;
}

/* ---- start ---------------------------------------------------------------- */

/* The request, read and checked before any C resource is taken. */
typedef struct {
    const char *method, *url, *body, *output;
    size_t body_len, output_len;
    lua_Integer max_output;
    long timeout_ms, connect_timeout_ms;
    int follow, has_body_method;
} kh_req;

static int valid_method(const char *m, size_t len, int *with_body) {
    static const char *const names[] = {"GET", "HEAD", "DELETE", "POST", "PUT", "PATCH", NULL};
    int i;
    for (i = 0; names[i]; i++) {
        if (kling_is_name(m, len, names[i])) {
            *with_body = i >= 3; /* POST, PUT, PATCH always send a body (maybe empty) */
            return 1;
        }
    }
    return 0;
}

static void read_req(lua_State *L, kh_client *c, int idx, kh_req *r) {
    size_t url_len = 0, method_len = 3;
    memset(r, 0, sizeof *r);
    r->method = kling_optstr(L, idx, "method", &method_len);
    if (!r->method) {
        r->method = "GET";
        method_len = 3;
    }
    if (!valid_method(r->method, method_len, &r->has_body_method)) {
        luaL_error(L, "kling.http: field 'method' must be one of GET, HEAD, DELETE, POST, PUT, PATCH");
    }
    r->url = kling_optstr(L, idx, "url", &url_len);
    if (!r->url || strlen(r->url) != url_len ||
        (strncmp(r->url, "http://", 7) != 0 && strncmp(r->url, "https://", 8) != 0)) {
        luaL_error(L, "kling.http: field 'url' must be an http:// or https:// URL");
    }
    r->body = kling_optstr(L, idx, "body", &r->body_len);
    if (r->body && strcmp(r->method, "GET") == 0) {
        luaL_error(L, "kling.http: field 'body' is not allowed with method GET");
    }
    if (r->body && strcmp(r->method, "HEAD") == 0) {
        luaL_error(L, "kling.http: field 'body' is not allowed with method HEAD");
    }
    r->output = kling_optstr(L, idx, "output", &r->output_len);
    if (r->output && r->output[0] == '\0') {
        luaL_error(L, "kling.http: field 'output' must be a non-empty path");
    }
    r->max_output = r->output ? opt_positive(L, idx, "max_output", INT_MAX, INT_MAX) : 0;
    r->timeout_ms = (long)opt_positive(L, idx, "timeout_ms", c->timeout_ms, INT_MAX);
    r->connect_timeout_ms =
        (long)opt_positive(L, idx, "connect_timeout_ms", c->connect_timeout_ms, INT_MAX);
    kling_rawfield(L, idx, "follow");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
        luaL_error(L, "kling.http: field 'follow' must be a boolean");
    }
    r->follow = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

static int is_token_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Append the request headers to x->headers_out. A value with CR/LF would
 * smuggle extra headers; raise before anything is sent. */
static void build_headers(lua_State *L, kh_xfer *x, int idx) {
    int has_expect = 0;
    kling_rawfield(L, idx, "headers");
    if (!lua_isnil(L, -1)) {
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) {
            luaL_error(L, "kling.http: field 'headers' must be a table of name = value");
        }
        lua_pushnil(L);
        while (lua_next(L, t) != 0) {
            size_t nlen = 0, vlen = 0, i;
            const char *name, *value;
            struct curl_slist *l;
            if (lua_type(L, -2) != LUA_TSTRING) {
                luaL_error(L, "kling.http: field 'headers' must have string names");
            }
            name = lua_tolstring(L, -2, &nlen);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                luaL_error(L, "kling.http: header '%s' must have a string value", name);
            }
            lua_pushvalue(L, -1); /* tolstring on a copy: never convert the key under lua_next */
            value = lua_tolstring(L, -1, &vlen);
            if (nlen == 0) {
                luaL_error(L, "kling.http: field 'headers' has an empty header name");
            }
            for (i = 0; i < nlen; i++) {
                if (!is_token_char((unsigned char)name[i])) {
                    luaL_error(L, "kling.http: header name '%s' has an invalid character", name);
                }
            }
            for (i = 0; i < vlen; i++) {
                if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') {
                    luaL_error(L, "kling.http: header '%s' value must not contain CR, LF or NUL", name);
                }
            }
            if (nlen == 6 && strncasecmp(name, "expect", 6) == 0) {
                has_expect = 1;
            }
            /* "Name;" is libcurl's way to send a header with an empty value. */
            if (vlen == 0) {
                lua_pushfstring(L, "%s;", name);
            } else {
                lua_pushfstring(L, "%s: %s", name, value);
            }
            l = curl_slist_append(x->headers_out, lua_tostring(L, -1));
            if (!l) {
                luaL_error(L, "kling.http: out of memory");
            }
            x->headers_out = l;
            lua_pop(L, 3);
        }
    }
    lua_pop(L, 1);
    if (!has_expect) {
        /* No "Expect: 100-continue" round trip for larger bodies: API bodies are
         * small, and the wait adds latency with servers that ignore it. */
        struct curl_slist *l = curl_slist_append(x->headers_out, "Expect:");
        if (!l) {
            luaL_error(L, "kling.http: out of memory");
        }
        x->headers_out = l;
    }
}

#define SETOPT(opt, val)                                                                  \
    do {                                                                                  \
        CURLcode rc_ = curl_easy_setopt(x->easy, opt, val);                               \
        if (rc_ != CURLE_OK) {                                                            \
            *what = #opt;                                                                 \
            return rc_;                                                                   \
        }                                                                                 \
    } while (0)

static CURLcode set_options(kh_client *c, kh_xfer *x, const kh_req *r, const char **what) {
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file) {
        SETOPT(CURLOPT_CAINFO, c->ca_file);
    }
    if (c->no_capath) {
        /* libcurl (7.87+, OpenSSL) keeps the parsed CA store in the multi only
         * when it comes from a file alone; with a CA directory configured as
         * well (Debian's build: /etc/ssl/certs) every new connection parsed
         * the CA file again: 18 % of a create's CPU, and its memory. */
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    SETOPT(CURLOPT_SHARE, c->share);
    if (c->tickets && kh_tickets_setopt(x->easy) != CURLE_OK) {
        c->tickets = 0; /* a libcurl without the hook: sessions as libcurl keeps them */
    }
#if LIBCURL_VERSION_NUM >= 0x075700
    /* The parsed CA store is kept in the multi and shared by every connection
     * (libcurl's default is already a day; said here because CPU and memory rely on it). */
    SETOPT(CURLOPT_CA_CACHE_TIMEOUT, 86400L);
#endif
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_USERAGENT, c->user_agent);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, r->timeout_ms);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's answer is not the server's */
    SETOPT(CURLOPT_HEADERFUNCTION, kh_on_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    SETOPT(CURLOPT_WRITEFUNCTION, kh_on_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HTTPHEADER, x->headers_out);
    if (r->follow) {
        SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
        SETOPT(CURLOPT_MAXREDIRS, KH_MAX_REDIRS);
    }
    if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0) {
        /* libcurl silently resends a request whose reused connection (HTTP/1.1
         * keep-alive or an HTTP/2 stream) closed before any response byte, even
         * after the server read it: a create could run twice. The pre-request
         * hook refuses that second send (kh_on_prereq), so creates share the
         * kept-alive connections; without the hook, a fresh connection each,
         * which is never retried that way. */
#if KH_HAS_PREREQ
        SETOPT(CURLOPT_PREREQFUNCTION, kh_on_prereq);
        SETOPT(CURLOPT_PREREQDATA, (void *)x);
#else
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
#endif
    }
    if (strcmp(r->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        if (strcmp(r->method, "POST") != 0) {
            SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
        }
        if (r->body || r->has_body_method) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
            SETOPT(CURLOPT_COPYPOSTFIELDS, r->body ? r->body : "");
        }
    }
    return CURLE_OK;
}

/* Start the request in the table at idx. Returns the transfer, or NULL with
 * an error message pushed (run-time failure). Raises on misuse. */
static kh_xfer *start(lua_State *L, kh_client *c, int idx) {
    kh_req r;
    kh_xfer *x;
    const char *what = NULL;
    CURLcode rc;
    CURLMcode mrc;
    luaL_checktype(L, idx, LUA_TTABLE);
    check_known_fields(L, idx, "request", request_fields);
    read_req(L, c, idx, &r);
    x = xfer_take(L, c);
    build_headers(L, x, idx);
    x->max_body = c->max_body;
    if (r.output) {
        /* kling_create_output: never through a link, never over what is not ours. */
        long at = kling_path_control_at(r.output, r.output_len);
        const char *refused = NULL;
        int fd = at >= 0 ? -1 : kling_create_output(r.output, &refused);
        int e = errno;
        x->out = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (!x->out) {
            e = fd >= 0 ? errno : e;
            if (fd >= 0) {
                close(fd);
                unlink(r.output);
            }
            c->building = NULL;
            xfer_recycle(c, x);
            if (at >= 0) {
                lua_pushfstring(L, "kling.http: output: the path holds a control character at offset %d",
                                (int)at);
            } else if (refused) {
                lua_pushfstring(L, "kling.http: output: cannot create '%s': it exists and is %s", r.output,
                                refused);
            } else {
                lua_pushfstring(L, "kling.http: output: cannot open '%s': %s", r.output, strerror(e));
            }
            return NULL;
        }
        x->has_output = 1;
        x->max_output = (curl_off_t)r.max_output;
    }
    rc = set_options(c, x, &r, &what);
    if (rc != CURLE_OK) {
        c->building = NULL;
        xfer_recycle(c, x);
        lua_pushfstring(L, "kling.http: curl_easy_setopt(%s): %s", what, curl_easy_strerror(rc));
        return NULL;
    }
    mrc = curl_multi_add_handle(c->multi, x->easy);
    if (mrc != CURLM_OK) {
        c->building = NULL;
        xfer_recycle(c, x);
        lua_pushfstring(L, "kling.http: curl_multi_add_handle: %s", curl_multi_strerror(mrc));
        return NULL;
    }
    c->building = NULL;
    x->id = ++c->next_id;
    x->state = KH_ACTIVE;
    kh_list_push(&c->active, x);
    return x;
}

static int l_start(lua_State *L) {
    kh_client *c = check_client(L);
    kh_xfer *x = start(L, c, 2);
    if (!x) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushinteger(L, x->id);
    return 1;
}

/* ---- the multi loop ----------------------------------------------------- */

/* Record what CURLINFO knows before the handle is recycled, take it out of the
 * multi and finish its output file. */
static CURLMcode finish(kh_client *c, kh_xfer *x, CURLcode code) {
    long status = 0;
    CURLMcode mrc;
    x->code = code;
    /* If the request size is unknown, say it was sent: a POST then is not
     * retried blindly. */
    if (curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &x->request_size) != CURLE_OK) {
        x->request_size = 1;
    }
    if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &x->upload_bytes) != CURLE_OK) {
        x->upload_bytes = 0;
    }
    if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &x->total_us) != CURLE_OK) {
        x->total_us = 0;
    }
    if (x->status <= 0 && curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
        x->status = status;
    }
    mrc = curl_multi_remove_handle(c->multi, x->easy);
    if (mrc != CURLM_OK) {
        return mrc;
    }
    if (x->out) {
        /* A complete download is made durable before the caller renames it. */
        if (code == CURLE_OK && !x->out_errno &&
            (fflush(x->out) != 0 || fsync(fileno(x->out)) != 0)) {
            x->out_errno = errno ? errno : EIO;
        }
        if (fclose(x->out) != 0 && code == CURLE_OK && !x->out_errno) {
            x->out_errno = errno ? errno : EIO;
        }
        x->out = NULL;
    }
    kh_list_unlink(&c->active, x);
    x->state = KH_DONE;
    kh_list_push(&c->done, x);
    return CURLM_OK;
}

/* Run the transfers that can progress and move the finished ones to `done`. */
static CURLMcode perform(kh_client *c, const char **what) {
    int running = 0, left = 0;
    CURLMsg *m;
    CURLMcode mrc = curl_multi_perform(c->multi, &running);
    if (mrc != CURLM_OK) {
        *what = "curl_multi_perform";
        return mrc;
    }
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        char *priv = NULL;
        CURLcode code;
        CURL *easy;
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        code = m->data.result; /* m is invalid once the handle is removed */
        easy = m->easy_handle;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv) {
            *what = "curl_easy_getinfo(CURLINFO_PRIVATE)";
            return CURLM_INTERNAL_ERROR;
        }
        mrc = finish(c, (kh_xfer *)(void *)priv, code);
        if (mrc != CURLM_OK) {
            *what = "curl_multi_remove_handle";
            return mrc;
        }
    }
    return CURLM_OK;
}

static CURLMcode poll_for(kh_client *c, lua_Integer ms, const char **what) {
    CURLMcode mrc = curl_multi_poll(c->multi, NULL, 0, ms > INT_MAX ? INT_MAX : (int)ms, NULL);
    if (mrc != CURLM_OK) {
        *what = "curl_multi_poll";
    }
    return mrc;
}

static int push_multi_error(lua_State *L, const char *what, CURLMcode mrc) {
    lua_pushnil(L);
    lua_pushfstring(L, "kling.http: %s: %s", what, curl_multi_strerror(mrc));
    return 2;
}

/* Push x's result, then recycle it. If pushing raises, x stays collectable. */
static void collect(lua_State *L, kh_client *c, kh_xfer *x) {
    kh_push_result(L, x);
    kh_list_unlink(&c->done, x);
    xfer_recycle(c, x);
}

/* Ctrl-C while a transfer blocks in C (a stalled download, up to its 600 s timeout): the loops
 * give Lua the hand back once kling_interrupted says so (curl_multi_poll returns early on the
 * signal). */
static int l_wait(lua_State *L) {
    kh_client *c = check_client(L);
    lua_Integer timeout = luaL_checkinteger(L, 2);
    lua_Integer deadline;
    const char *what = NULL;
    lua_Integer i = 0;
    kling_hookmark mark;
    luaL_argcheck(L, timeout >= 0, 2, "timeout_ms must be >= 0");
    if (timeout > INT_MAX) {
        timeout = INT_MAX; /* 24 days: keeps the deadline from overflowing */
    }
    deadline = mono_ms() + timeout;
    mark = kling_hook_mark(L);
    for (;;) {
        lua_Integer left;
        CURLMcode mrc = perform(c, &what);
        if (mrc != CURLM_OK) {
            return push_multi_error(L, what, mrc);
        }
        if (c->done.count > 0 || c->active.count == 0 || kling_interrupted(&mark)) {
            break;
        }
        left = deadline - mono_ms();
        if (left <= 0) {
            break;
        }
        mrc = poll_for(c, left, &what);
        if (mrc != CURLM_OK) {
            return push_multi_error(L, what, mrc);
        }
    }
    lua_createtable(L, (int)c->done.count, 0);
    while (c->done.first) {
        collect(L, c, c->done.first);
        lua_rawseti(L, -2, (int)++i);
    }
    return 1;
}

static int l_request(lua_State *L) {
    kh_client *c = check_client(L);
    const char *what = NULL;
    kling_hookmark mark;
    kh_xfer *x = start(L, c, 2);
    if (!x) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    /* Other transfers may finish meanwhile: they wait in `done` for wait().
     * The request's own timeout bounds this loop, and Ctrl-C ends it (the transfer dropped,
     * nil, "interrupted": Lua raises "interrupted!" at once). */
    mark = kling_hook_mark(L);
    while (x->state != KH_DONE) {
        CURLMcode mrc = perform(c, &what);
        if (mrc == CURLM_OK && x->state != KH_DONE && kling_interrupted(&mark)) {
            mrc = curl_multi_remove_handle(c->multi, x->easy);
            if (mrc != CURLM_OK) {
                return push_multi_error(L, "curl_multi_remove_handle", mrc);
            }
            kh_list_unlink(&c->active, x);
            xfer_recycle(c, x);
            lua_pushnil(L);
            lua_pushliteral(L, "interrupted");
            return 2;
        }
        if (mrc == CURLM_OK && x->state != KH_DONE) {
            mrc = poll_for(c, 1000, &what);
        }
        if (mrc != CURLM_OK) {
            return push_multi_error(L, what, mrc);
        }
    }
    collect(L, c, x);
    return 1;
}

static int l_cancel(lua_State *L) {
    kh_client *c = check_client(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    kh_xfer *x = find_xfer(&c->active, id);
    if (x) {
        CURLMcode mrc = curl_multi_remove_handle(c->multi, x->easy);
        if (mrc != CURLM_OK) {
            return push_multi_error(L, "curl_multi_remove_handle", mrc);
        }
        kh_list_unlink(&c->active, x);
        xfer_recycle(c, x);
        lua_pushboolean(L, 1);
        return 1;
    }
    x = find_xfer(&c->done, id);
    if (x) { /* finished but not collected: dropped, never reported */
        kh_list_unlink(&c->done, x);
        xfer_recycle(c, x);
    }
    lua_pushboolean(L, x != NULL);
    return 1;
}

/* core.http_check_request(req): raises as start{} and request{} do on a field they do not
 * take (the nginx driver's requests are checked by this one list too). */
static int l_check_request(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    check_known_fields(L, 1, "request", request_fields);
    return 0;
}

void kling_open_http(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"start", l_start},
        {"wait", l_wait},
        {"request", l_request},
        {"pending", l_pending},
        {"cancel", l_cancel},
        {"close", l_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_gc},
        {"__tostring", l_tostring},
#if LUA_VERSION_NUM >= 504
        {"__close", l_gc},
#endif
        {NULL, NULL},
    };
    kling_new_class(L, KH_MT, meta, methods);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "http");
    lua_pushcfunction(L, l_check_request);
    lua_setfield(L, -2, "http_check_request");
}
