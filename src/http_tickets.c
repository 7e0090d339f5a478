/* TLS 1.3 session tickets that concurrent connections can all resume from.
 *
 * libcurl (7.88, OpenSSL backend) keeps one TLS session per host, and every
 * create opens a fresh connection that resumes it. OpenSSL, though, treats a
 * TLS 1.3 ticket as single-use on the client: the moment a handshake has
 * resumed with it, it removes the session from the (per-connection) client
 * cache, which marks it not resumable. libcurl keeps handing that spent
 * session out until the resumed connection reads its own new ticket, and
 * every connection opened in between (many, with 64 creates at once) did a
 * full handshake: 13-30 % of them against the simulator, measured with
 * $ssl_session_reused in its access log.
 *
 * The hook below keeps the session resumable: while a TLS 1.3 handshake that
 * resumed finishes, the client cache mode of its SSL_CTX is off (so OpenSSL
 * does not remove the session), and it is back on when the handshake is done
 * (so the new tickets that follow still reach libcurl's cache). The same
 * ticket then serves the connections opened in the meantime: servers with
 * stateless tickets (nginx's default, most large APIs) accept it; a server
 * that enforces single use answers with a full handshake, as before. RFC 8446
 * asks clients not to reuse tickets for privacy (an observer can link the
 * connections): every connection of this client carries the same API
 * credentials, so nothing is linked that was not already. TLS 1.2 and first
 * handshakes are left alone. */
#include "http.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <string.h>

/* The SSL's flag "this handshake turned the client cache off": an ex_data
 * index, made once per process (OpenSSL's own locking). */
static pthread_once_t kh_ticket_once = PTHREAD_ONCE_INIT;
static int kh_ticket_index = -1;

static void ticket_index_init(void) {
    kh_ticket_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void keep_ticket(const SSL *ssl, int where, int ret) {
    SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
    long mode;
    (void)ret;
    if (ctx == NULL || kh_ticket_index < 0) {
        return;
    }
    mode = SSL_CTX_get_session_cache_mode(ctx);
    if ((where & SSL_CB_LOOP) && (mode & SSL_SESS_CACHE_CLIENT) && SSL_version(ssl) == TLS1_3_VERSION &&
        SSL_session_reused((SSL *)ssl) && SSL_get_ex_data(ssl, kh_ticket_index) == NULL) {
        SSL_CTX_set_session_cache_mode(ctx, mode & ~SSL_SESS_CACHE_CLIENT);
        SSL_set_ex_data((SSL *)ssl, kh_ticket_index, (void *)ctx);
    } else if ((where & SSL_CB_HANDSHAKE_DONE) && SSL_get_ex_data(ssl, kh_ticket_index) != NULL) {
        SSL_CTX_set_session_cache_mode(ctx, mode | SSL_SESS_CACHE_CLIENT);
        SSL_set_ex_data((SSL *)ssl, kh_ticket_index, NULL);
    }
}

/* CURLOPT_SSL_CTX_FUNCTION: libcurl calls it with each connection's SSL_CTX
 * after its own setup (session cache mode included). */
static CURLcode tickets_ctx(CURL *curl, void *sslctx, void *parm) {
    (void)curl;
    (void)parm;
    SSL_CTX_set_info_callback((SSL_CTX *)sslctx, keep_ticket);
    return CURLE_OK;
}

int kh_tickets_usable(void) {
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    if (info == NULL || info->ssl_version == NULL || strncmp(info->ssl_version, "OpenSSL/", 8) != 0) {
        return 0; /* another TLS library: its SSL_CTX is not OpenSSL's */
    }
    if (pthread_once(&kh_ticket_once, ticket_index_init) != 0) {
        return 0;
    }
    return kh_ticket_index >= 0;
}

CURLcode kh_tickets_setopt(CURL *easy) {
    return curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, tickets_ctx);
}
