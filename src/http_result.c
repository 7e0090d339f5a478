/* What a transfer collects while it runs (libcurl callbacks, pure C) and what
 * Lua sees once it finished: the result table and its error category. */
#include "http.h"
#include "http_head.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Response header blocks larger than this stop the transfer (too_large): no
 * API answer needs them. It stays below libcurl's own limit (300 KiB in 7.88),
 * which reports RECV_ERROR, a "reset" that a GET would retry in vain. */
#define KH_MAX_HEAD ((size_t)256 * 1024)

void kh_list_push(kh_list *list, kh_xfer *x) {
    x->next = NULL;
    x->prev = list->last;
    if (list->last) {
        list->last->next = x;
    } else {
        list->first = x;
    }
    list->last = x;
    list->count++;
}

void kh_list_unlink(kh_list *list, kh_xfer *x) {
    if (x->prev) {
        x->prev->next = x->next;
    } else {
        list->first = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    } else {
        list->last = x->prev;
    }
    x->prev = x->next = NULL;
    list->count--;
}

int kh_buf_append(kh_buf *b, const char *data, size_t len) {
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap - b->len < len) {
            if (cap > ((size_t)-1) / 2) {
                return 0;
            }
            cap *= 2;
        }
        p = realloc(b->data, cap);
        if (!p) {
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 1;
}

/* Empty the buffer; keep its memory when small, so recycled transfers reuse it. */
void kh_buf_release(kh_buf *b, size_t keep_cap) {
    b->len = 0;
    if (b->cap > keep_cap) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

size_t kh_on_header(char *data, size_t size, size_t n, void *ud) {
    kh_xfer *x = ud;
    size_t len = size * n;
    long status = kling_http_status(data, len);
    x->rx_bytes += (curl_off_t)len;
    /* A new status line starts a new response block (1xx, a followed redirect):
     * only the last block's headers describe the result. */
    if (status >= 0) {
        x->status = status;
        x->head.len = 0;
    }
    if (x->head.len + len > KH_MAX_HEAD) {
        x->too_large = 2;
        return 0;
    }
    if (!kh_buf_append(&x->head, data, len)) {
        x->oom = 1;
        return 0;
    }
    return len;
}

size_t kh_on_body(char *data, size_t size, size_t n, void *ud) {
    kh_xfer *x = ud;
    size_t len = size * n;
    x->rx_bytes += (curl_off_t)len;
    /* Only a successful body goes to the file; an error page stays in memory
     * where the caller can read it. */
    if (x->has_output && x->status >= 200 && x->status < 300) {
        if (!x->out) {
            x->out_errno = EBADF;
            return 0;
        }
        if (x->max_output > 0 && (curl_off_t)len > x->max_output - x->out_bytes) {
            x->too_large = 3;
            return 0;
        }
        if (len > 0 && fwrite(data, 1, len, x->out) != len) {
            x->out_errno = errno ? errno : EIO;
            return 0;
        }
        x->out_bytes += (curl_off_t)len;
        return len;
    }
    if (len > x->max_body - x->body.len) {
        x->too_large = 1;
        return 0;
    }
    if (!kh_buf_append(&x->body, data, len)) {
        x->oom = 1;
        return 0;
    }
    return len;
}

#if KH_HAS_PREREQ
/* libcurl (7.88: Curl_retry_request) sends a request again, on a new connection, when the
 * reused connection it went out on closed before any byte of an answer. The server may have
 * read it and acted (a create made, and billed): a POST must not go twice. A second send is
 * allowed only after an answer (a redirect followed, a 417 to an Expect); a silent resend
 * ends the transfer instead, reported as a reset after the request was sent, which the
 * lifecycle treats as an uncertain create (look up by external id, never blind resend). */
int kh_on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port) {
    kh_xfer *x = ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (x->sends > 0 && x->rx_bytes == x->rx_at_send) {
        x->resend_refused = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    x->sends++;
    x->rx_at_send = x->rx_bytes;
    return CURL_PREREQFUNC_OK;
}
#endif

const char *kh_category(const kh_xfer *x) {
    if (x->resend_refused) {
        return "reset"; /* the connection closed with no answer after the request went out */
    }
    if (x->too_large) {
        return "too_large";
    }
    if (x->oom || x->out_errno) {
        return "other";
    }
    switch (x->code) {
    case CURLE_OK:
        return NULL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
        return "tls";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2:        /* HTTP/2 (negotiated when the server offers it): the connection failed */
    case CURLE_HTTP2_STREAM: /* or the server reset the request's stream */
        return "reset";
    case CURLE_PARTIAL_FILE:
        return "partial";
    default:
        return "other";
    }
}

/* Push name lower-cased: header names are case-insensitive, Lua keys are not. */
static void push_lower(lua_State *L, const char *s, size_t len) {
    luaL_Buffer b;
    char *p;
    size_t i;
    luaL_buffinit(L, &b);
    p = luaL_prepbuffsize(&b, len);
    for (i = 0; i < len; i++) {
        char c = s[i];
        p[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    luaL_addsize(&b, len);
    luaL_pushresult(&b);
}

/* Set headers[name] = value into the table at the top of the stack, joining a
 * repeated name with ", " (RFC 9110 5.3) or, for a folded continuation
 * (name == NULL), appending to the previous header's value. */
static void set_header(lua_State *L, const char *name, size_t nlen, const char *v, size_t vlen,
                       int *has_last) {
    if (name) {
        push_lower(L, name, nlen);
    } else {
        if (!*has_last) {
            return; /* a continuation line with nothing to continue */
        }
        lua_pushvalue(L, -2); /* the last name, kept below the table */
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isstring(L, -1)) {
        lua_pushstring(L, name ? ", " : " ");
        lua_pushlstring(L, v, vlen);
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, vlen);
    }
    /* stack: ... lastname table name value: set, then keep name as "last" */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);          /* table[name] = value; leaves name */
    lua_replace(L, -3);         /* name becomes the new "last" */
    *has_last = 1;
}

/* Push a table of the last response block's headers (kling_http_head_next: the
 * status line and the blank line that ends a block are skipped). */
static void push_headers(lua_State *L, const kh_buf *head) {
    /* No header bytes at all leaves data NULL: NULL + 0 is undefined (UBSan, issue 11.17). */
    const char *p = head->data, *end = p ? p + head->len : NULL;
    struct kling_http_field f;
    int has_last = 0;
    lua_pushnil(L);      /* slot for the last header name (continuations) */
    lua_newtable(L);
    while (p && kling_http_head_next(&p, end, &f)) {
        set_header(L, f.name, f.nlen, f.value, f.vlen, &has_last);
    }
    lua_remove(L, -2);
}

static void push_message(lua_State *L, const kh_xfer *x) {
    char text[96];
    if (x->too_large == 2) {
        snprintf(text, sizeof text, "response headers larger than %zu bytes", KH_MAX_HEAD);
        lua_pushstring(L, text);
    } else if (x->too_large == 3) {
        snprintf(text, sizeof text, "download larger than its limit (%lld bytes)", (long long)x->max_output);
        lua_pushstring(L, text);
    } else if (x->too_large) {
        snprintf(text, sizeof text, "response body larger than max_body (%zu bytes)", x->max_body);
        lua_pushstring(L, text);
    } else if (x->oom) {
        lua_pushstring(L, "out of memory while receiving the response");
    } else if (x->out_errno) {
        lua_pushfstring(L, "output: write failed: %s", strerror(x->out_errno));
    } else if (x->resend_refused) {
        lua_pushstring(L, "the reused connection closed before any answer: the request was sent once and may "
                          "have been read; not sent again");
    } else if (x->errbuf[0]) {
        /* libcurl's detail ("Failed to connect to 127.0.0.1 port 9: ...") never
         * includes request headers, so no secret can leak through it. */
        lua_pushfstring(L, "%s: %s", curl_easy_strerror(x->code), x->errbuf);
    } else {
        lua_pushstring(L, curl_easy_strerror(x->code));
    }
}

void kh_push_result(lua_State *L, const kh_xfer *x) {
    const char *category = kh_category(x);
    int streamed = x->has_output && x->status >= 200 && x->status < 300;
    lua_createtable(L, 0, 13);
    kling_setint(L, "id", x->id);
    kling_setbool(L, "ok", category == NULL);
    if (x->status > 0) {
        kling_setint(L, "status", (lua_Integer)x->status);
    }
    push_headers(L, &x->head);
    lua_setfield(L, -2, "headers");
    if (!streamed && (category == NULL || x->body.len > 0)) {
        lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
        lua_setfield(L, -2, "body");
    }
    kling_setint(L, "bytes", (lua_Integer)(streamed ? x->out_bytes : (curl_off_t)x->body.len));
    kling_setbool(L, "sent", x->request_size > 0 || x->upload_bytes > 0 || x->resend_refused);
    kling_setbool(L, "received", x->rx_bytes > 0);
    kling_setint(L, "elapsed_ms", (lua_Integer)(x->total_us / 1000));
    kling_setint(L, "curl_code", (lua_Integer)x->code);
    if (category) {
        kling_setstr(L, "error", category);
        push_message(L, x);
        lua_setfield(L, -2, "message");
    }
}
