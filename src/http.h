/* The libcurl multi driver behind the `kling.http` userdata: shared between
 * http.c (the userdata, the multi loop) and http_result.c (what a finished
 * transfer looks like to Lua). Not part of the pure core: it does I/O. */
#ifndef KLING_HTTP_H
#define KLING_HTTP_H

#include "kling.h"

#include <stdio.h>
#include <curl/curl.h>

/* A growable byte buffer; `cap` is kept when a transfer is recycled so that
 * the next one rarely reallocates. */
typedef struct {
    char *data;
    size_t len, cap;
} kh_buf;

/* One request from start() to the moment wait() hands its result to Lua.
 * Transfers live on exactly one list of their client: active (in the multi),
 * done (finished, result not yet collected) or free (recycled). */
enum { KH_FREE, KH_BUILDING, KH_ACTIVE, KH_DONE };

typedef struct kh_xfer {
    struct kh_xfer *prev, *next;
    CURL *easy;
    lua_Integer id;
    int state;            /* KH_* */
    struct curl_slist *headers_out;
    kh_buf body;          /* response body kept in memory */
    kh_buf head;          /* raw header lines of the last response block */
    FILE *out;            /* output file for a 2xx body, or NULL */
    int has_output;       /* the request named an output file */
    long status;          /* from the last status line seen */
    size_t max_body;      /* in-memory body limit for this transfer */
    curl_off_t out_bytes; /* body bytes written to `out` */
    curl_off_t max_output; /* cap on out_bytes (0: none): a download stops there */
    curl_off_t rx_bytes;  /* header + body bytes that arrived */
    int too_large;        /* stopped for size: 1 the body (max_body), 2 the headers, 3 output */
    int oom;              /* a callback could not grow a buffer */
    int out_errno;        /* errno of a failed write to `out`, or 0 */
    int sends;            /* times libcurl was about to send the request (CURLOPT_PREREQFUNCTION) */
    curl_off_t rx_at_send; /* rx_bytes when it last was */
    int resend_refused;   /* libcurl's silent resend was stopped: the request may have been read */
    /* Filled when the transfer finishes (CURLINFO is gone once recycled). */
    CURLcode code;
    long request_size;
    curl_off_t upload_bytes;
    curl_off_t total_us;
    char errbuf[CURL_ERROR_SIZE];
} kh_xfer;

typedef struct {
    kh_xfer *first, *last;
    size_t count;
} kh_list;

void kh_list_push(kh_list *list, kh_xfer *x);
void kh_list_unlink(kh_list *list, kh_xfer *x);

/* TLS 1.3 tickets kept resumable by concurrent connections (http_tickets.c):
 * kh_tickets_usable() is 1 when libcurl's TLS library is OpenSSL (then
 * kh_tickets_setopt installs the hook on a transfer). */
int kh_tickets_usable(void);
CURLcode kh_tickets_setopt(CURL *easy);

/* Byte buffers. kh_buf_append returns 0 when memory runs out. */
int kh_buf_append(kh_buf *b, const char *data, size_t len);
void kh_buf_release(kh_buf *b, size_t keep_cap);

/* libcurl callbacks (CURLOPT_HEADERFUNCTION / CURLOPT_WRITEFUNCTION), with
 * the transfer as their userdata. They never call into Lua. */
size_t kh_on_header(char *data, size_t size, size_t n, void *ud);
size_t kh_on_body(char *data, size_t size, size_t n, void *ud);

/* CURLOPT_PREREQFUNCTION (libcurl >= 7.80) of a POST or PATCH: called each time libcurl is
 * about to send the request; refuses a second send that no answer asked for. */
#define KH_HAS_PREREQ (LIBCURL_VERSION_NUM >= 0x075000)
#if KH_HAS_PREREQ
int kh_on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port);
#endif

/* Error category of a finished transfer: NULL when a complete response arrived. */
const char *kh_category(const kh_xfer *x);

/* Push the result table of a finished transfer. May raise (Lua out of memory);
 * the transfer is left untouched so that it can be collected again. */
void kh_push_result(lua_State *L, const kh_xfer *x);

#endif
