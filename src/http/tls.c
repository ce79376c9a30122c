/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls.c: OpenSSL contexts for TLS listeners (one SSL_CTX per certificate,
 * chosen by SNI in the servername callback) and TLS pools, and the
 * per-connection wrapper that gives read(2)/writev(2) semantics on a
 * non-blocking socket. Contexts are built on the main thread and shared by
 * all workers read-only; OpenSSL locks its own session cache.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"). */
#define CIPHERS_TLS12 \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define SESSION_CACHE_SIZE 1024     /* per listener; tickets carry the rest */
#define RECORD_MAX 16384            /* plaintext bytes in one TLS record */

/* All contexts share one session id context, so that SNI switching keeps resumption. */
static const unsigned char session_id_context[] = "switchyard";

struct server_cert {
    SSL_CTX *ctx;
    char **names;               /* lower case; "*.example.com" matches one label */
    size_t nnames;
};

struct sy_tls_server {
    struct server_cert *certs;  /* [0] is the default */
    struct sy_tls_cert_info *info;
    size_t ncerts;
    bool h2;
};

struct sy_tls_client {
    SSL_CTX *ctx;
};

struct sy_tls_conn {
    SSL *ssl;
    short wants;                /* EV_READ or EV_WRITE, after EAGAIN */
    bool failed;                /* fatal error: no close_notify */
};

/* ---- process-wide session ticket key -------------------------------------- */

/*
 * Written once, before any context exists, then only read: every worker and
 * every reloaded snapshot encrypts tickets with the same key, so a client
 * resumes whichever worker or snapshot it lands on. Lost on restart.
 */
static unsigned char ticket_keys[80];
static bool ticket_keys_ok;
static int server_index = -1;       /* SSL_CTX ex_data: the sy_tls_server owning it */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void server_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp);

static void tls_init(void)
{
    ticket_keys_ok = RAND_bytes(ticket_keys, sizeof(ticket_keys)) == 1;
    server_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, server_release);
}

/* ---- errors --------------------------------------------------------------- */

static const char *openssl_reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_last_error());

    return r ? r : "unknown error";
}

/* True when the last error is the end of the PEM objects in a file. */
static bool pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();

    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* OpenSSL 3 reports a PEM file without a key as a decoder failure. */
static const char *key_failure(void)
{
    unsigned long e = ERR_peek_last_error();

    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ)
        return "encrypted keys are not supported";
    if (pem_at_end() || ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER)
        return "no private key found";
    return openssl_reason();
}

void sy_tls_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    const char *r = ERR_reason_error_string(e);

    if (e == 0)
        snprintf(buf, len, "no TLS error queued");
    else if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* Keys are never encrypted in our configuration: refuse rather than prompt on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static BIO *open_pem(const char *file, char *err, size_t errlen, const char *path)
{
    FILE *fp = fopen(file, "r");
    BIO *b;

    if (!fp) {
        snprintf(err, errlen, "%s: cannot load %s: %s", path, file, strerror(errno));
        return NULL;
    }
    if (!(b = BIO_new_fp(fp, BIO_CLOSE))) {
        fclose(fp);
        snprintf(err, errlen, "%s: cannot load %s: out of memory", path, file);
    }
    return b;
}

/* ---- certificates --------------------------------------------------------- */

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
    struct tm tm;

    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    return (int64_t)timegm(&tm);
}

int64_t sy_tls_cert_not_after(const char *pem_path)
{
    FILE *fp = fopen(pem_path, "r");
    X509 *x;
    int64_t t;

    if (!fp)
        return -1;
    x = PEM_read_X509(fp, NULL, no_password, NULL);
    fclose(fp);
    ERR_clear_error();
    if (!x)
        return -1;
    t = asn1_time_epoch(X509_get0_notAfter(x));
    X509_free(x);
    return t;
}

/* The leaf, then every further certificate of the chain file. */
static int load_chain(SSL_CTX *ctx, const char *file, const char *path, char *err, size_t errlen)
{
    BIO *b = open_pem(file, err, errlen, path);
    X509 *x;
    int rc = -1;

    if (!b)
        return -1;
    ERR_clear_error();
    if (!(x = PEM_read_bio_X509_AUX(b, NULL, no_password, NULL))) {
        snprintf(err, errlen, "%s: cannot load %s: %s", path, file,
                 pem_at_end() ? "no certificate found" : openssl_reason());
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        snprintf(err, errlen, "%s: cannot use %s: %s", path, file, openssl_reason());
        X509_free(x);
        goto out;
    }
    X509_free(x);
    while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            snprintf(err, errlen, "%s: cannot use the chain in %s: %s", path, file,
                     openssl_reason());
            goto out;
        }
    }
    if (!pem_at_end()) {
        snprintf(err, errlen, "%s: cannot load the chain in %s: %s", path, file,
                 openssl_reason());
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(b);
    return rc;
}

static int load_key(SSL_CTX *ctx, const struct sy_tls_cert *tc, const char *path,
                    char *err, size_t errlen)
{
    BIO *b = open_pem(tc->key, err, errlen, path);
    EVP_PKEY *k;
    int rc = -1;

    if (!b)
        return -1;
    ERR_clear_error();
    if (!(k = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL))) {
        snprintf(err, errlen, "%s: cannot load %s: %s", path, tc->key,
                 key_failure());
    } else if (SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s: %s does not match the certificate in %s", path, tc->key,
                 tc->cert);
    } else {
        rc = 0;
    }
    EVP_PKEY_free(k);
    ERR_clear_error();
    BIO_free(b);
    return rc;
}

static int add_name(struct server_cert *sc, const unsigned char *s, size_t len)
{
    char **names, *name;

    if (len == 0 || memchr(s, '\0', len))
        return 0;               /* an embedded NUL would match a shorter name: skip it */
    if (!(names = realloc(sc->names, (sc->nnames + 1) * sizeof(*names))))
        return -1;
    sc->names = names;
    if (!(name = malloc(len + 1)))
        return -1;
    for (size_t i = 0; i < len; i++)
        name[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    name[len] = '\0';
    sc->names[sc->nnames++] = name;
    return 0;
}

/* subjectAltName DNS entries; the subject's CN only when there are none (RFC 6125 6.4.4). */
static int collect_names(struct server_cert *sc, X509 *x)
{
    GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;

    for (int i = 0; san && i < sk_GENERAL_NAME_num(san) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type == GEN_DNS)
            rc = add_name(sc, ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(san);
    if (rc == 0 && sc->nnames == 0) {
        const X509_NAME *subj = X509_get_subject_name(x);
        int at = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        unsigned char *cn = NULL;
        int len = at < 0 ? -1 : ASN1_STRING_to_UTF8(&cn,
                      X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, at)));
        if (len >= 0)
            rc = add_name(sc, cn, (size_t)len);
        OPENSSL_free(cn);
    }
    ERR_clear_error();
    return rc;
}

/* ---- server contexts ------------------------------------------------------ */

static bool name_matches(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(name, '.');
        /* one label only: "*.b.example" matches "x.b.example", not "b.example" or "y.x.b.example" */
        return dot && dot != name && strcmp(dot, pattern + 1) == 0;
    }
    return strcmp(pattern, name) == 0;
}

/* An exact name anywhere wins over a wildcard; then configuration order. */
static SSL_CTX *pick_ctx(const struct sy_tls_server *s, const char *name)
{
    for (int wild = 0; wild < 2; wild++) {
        for (size_t i = 0; i < s->ncerts; i++) {
            for (size_t j = 0; j < s->certs[i].nnames; j++) {
                const char *p = s->certs[i].names[j];
                if ((p[0] == '*') == (wild == 1) && name_matches(p, name))
                    return s->certs[i].ctx;
            }
        }
    }
    return s->certs[0].ctx;
}

/* The client's server name, lower case, without a final dot; -1 when unusable. */
static int sni_name(const char *sni, char *out, size_t outlen);

bool sy_tls_server_serves(const struct sy_tls_server *s, const char *host)
{
    char name[256];

    if (!s || sni_name(host, name, sizeof(name)) < 0)
        return false;
    for (size_t i = 0; i < s->ncerts; i++)
        for (size_t j = 0; j < s->certs[i].nnames; j++)
            if (name_matches(s->certs[i].names[j], name))
                return true;
    return false;
}

static int sni_name(const char *sni, char *out, size_t outlen)
{
    size_t n = strlen(sni);

    if (n > 0 && sni[n - 1] == '.')
        n--;
    if (n == 0 || n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((sni[i] >= 'A' && sni[i] <= 'Z') ? sni[i] + 32 : sni[i]);
    out[n] = '\0';
    return 0;
}

/*
 * Runs after the ClientHello is parsed, before the cipher and certificate
 * are chosen. Acknowledging the name (always) also stores it in the
 * session, so a resumed TLS 1.2 session still reports its SNI.
 */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct sy_tls_server *s = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char name[256];
    SSL_CTX *ctx;

    (void)alert;
    if (!sni || sni_name(sni, name, sizeof(name)) < 0)
        return SSL_TLSEXT_ERR_NOACK;
    ctx = pick_ctx(s, name);
    if (ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, ctx))
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

/* Server preference: h2 (when offered) before http/1.1; no common protocol is not an error. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char both[] = "\x02h2\x08http/1.1";
    const struct sy_tls_server *s = arg;
    const unsigned char *ours = s->h2 ? both : both + 3;
    unsigned int ourlen = s->h2 ? sizeof(both) - 1 : sizeof(both) - 4;
    unsigned char *sel;

    (void)ssl;
    if (SSL_select_next_proto(&sel, outlen, ours, ourlen, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* What every context, server or client, has in common. */
static SSL_CTX *ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (!ctx)
        return NULL;
    /* A plain EOF reads as 0: HTTP framing, not TLS, detects a truncated message. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                             | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static SSL_CTX *server_ctx_new(struct sy_tls_server *s)
{
    SSL_CTX *ctx = ctx_new(TLS_server_method());

    if (!ctx)
        return NULL;
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
    if (SSL_CTX_set_session_id_context(ctx, session_id_context,
                                       sizeof(session_id_context) - 1) != 1
        || SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys, sizeof(ticket_keys)) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int server_add_cert(struct sy_tls_server *s, size_t i, const struct sy_tls_cert *tc,
                           char *err, size_t errlen)
{
    struct server_cert *sc = &s->certs[i];
    char path[64];
    X509 *leaf;

    if (!(sc->ctx = server_ctx_new(s))
        || (i == 0 && SSL_CTX_set_ex_data(sc->ctx, server_index, s) != 1)) {
        snprintf(err, errlen, "tls.certificates[%zu]: cannot create a TLS context: %s", i,
                 openssl_reason());
        ERR_clear_error();
        SSL_CTX_free(sc->ctx);
        sc->ctx = NULL;
        return -1;
    }
    snprintf(path, sizeof(path), "tls.certificates[%zu].cert", i);
    if (load_chain(sc->ctx, tc->cert, path, err, errlen) < 0)
        return -1;
    snprintf(path, sizeof(path), "tls.certificates[%zu].key", i);
    if (load_key(sc->ctx, tc, path, err, errlen) < 0)
        return -1;
    leaf = SSL_CTX_get0_certificate(sc->ctx);
    if (collect_names(sc, leaf) < 0) {
        snprintf(err, errlen, "tls.certificates[%zu]: out of memory", i);
        return -1;
    }
    s->info[i].file = tc->cert;
    s->info[i].name = sc->nnames ? sc->names[0] : "";
    s->info[i].not_after = asn1_time_epoch(X509_get0_notAfter(leaf));
    return 0;
}

struct sy_tls_server *sy_tls_server_new(const struct sy_listen *l, char *err, size_t errlen)
{
    struct sy_tls_server *s;

    if (l->ncerts == 0) {
        snprintf(err, errlen, "tls.certificates: must not be empty");
        return NULL;
    }
    pthread_once(&tls_once, tls_init);
    if (!ticket_keys_ok || server_index < 0) {
        snprintf(err, errlen, "tls: cannot initialise OpenSSL (random bytes, ex_data)");
        return NULL;
    }
    if (!(s = calloc(1, sizeof(*s)))
        || !(s->certs = calloc(l->ncerts, sizeof(*s->certs)))
        || !(s->info = calloc(l->ncerts, sizeof(*s->info)))) {
        snprintf(err, errlen, "tls: out of memory");
        sy_tls_server_free(s);
        return NULL;
    }
    s->ncerts = l->ncerts;
    s->h2 = l->http2;
    for (size_t i = 0; i < l->ncerts; i++) {
        if (server_add_cert(s, i, &l->certs[i], err, errlen) < 0) {
            sy_tls_server_free(s);
            return NULL;
        }
    }
    SSL_CTX_set_tlsext_servername_callback(s->certs[0].ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(s->certs[0].ctx, s);
    return s;
}

/* Frees s and every context but certs[0].ctx, whose own freeing is what calls this. */
static void server_destroy(struct sy_tls_server *s)
{
    for (size_t i = 0; s->certs && i < s->ncerts; i++) {
        if (i > 0)
            SSL_CTX_free(s->certs[i].ctx);
        for (size_t j = 0; j < s->certs[i].nnames; j++)
            free(s->certs[i].names[j]);
        free(s->certs[i].names);
    }
    free(s->certs);
    free(s->info);
    free(s);
}

static void server_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr)
        server_destroy(ptr);
}

/*
 * Every SSL accepted on s holds a reference to certs[0].ctx (its session
 * context, even after an SNI switch), and s is that context's ex_data: the
 * last of the owner's reference and the connections' frees s.
 */
void sy_tls_server_free(struct sy_tls_server *s)
{
    if (!s)
        return;
    if (s->certs && s->certs[0].ctx)
        SSL_CTX_free(s->certs[0].ctx);
    else
        server_destroy(s);
}

const struct sy_tls_cert_info *sy_tls_server_certs(const struct sy_tls_server *s, size_t *n)
{
    *n = s->ncerts;
    return s->info;
}

/* ---- client contexts ------------------------------------------------------ */

static int load_ca(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *b = open_pem(file, err, errlen, "tls.ca_file");
    size_t n = 0;
    X509 *x;

    if (!b)
        return -1;
    ERR_clear_error();
    while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (ok != 1)
            break;
        n++;
    }
    BIO_free(b);
    if (!pem_at_end() || n == 0) {
        snprintf(err, errlen, "tls.ca_file: cannot load %s: %s", file,
                 n == 0 && pem_at_end() ? "no certificate found" : openssl_reason());
        ERR_clear_error();
        return -1;
    }
    ERR_clear_error();
    return 0;
}

struct sy_tls_client *sy_tls_client_new(const struct sy_pool *p, char *err, size_t errlen)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    struct sy_tls_client *cl = calloc(1, sizeof(*cl));

    if (!cl || !(cl->ctx = ctx_new(TLS_client_method()))) {
        snprintf(err, errlen, "tls: cannot create a TLS context: %s", openssl_reason());
        ERR_clear_error();
        free(cl);
        return NULL;
    }
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    if (p->tls_ca_file ? load_ca(cl->ctx, p->tls_ca_file, err, errlen) < 0
                       : SSL_CTX_set_default_verify_paths(cl->ctx) != 1) {
        if (!p->tls_ca_file)
            snprintf(err, errlen, "tls: cannot load the system CA store: %s", openssl_reason());
        ERR_clear_error();
        sy_tls_client_free(cl);
        return NULL;
    }
    /* returns 0 on success, unlike its neighbours */
    if (SSL_CTX_set_alpn_protos(cl->ctx, alpn, sizeof(alpn) - 1) != 0) {
        snprintf(err, errlen, "tls: out of memory");
        sy_tls_client_free(cl);
        return NULL;
    }
    return cl;
}

void sy_tls_client_free(struct sy_tls_client *cl)
{
    if (!cl)
        return;
    SSL_CTX_free(cl->ctx);
    free(cl);
}

int sy_tls_addr_host(const struct sy_addr *a, char *out, size_t outlen)
{
    const char *t = a->text, *end;

    if (t[0] == '[') {
        t++;
        end = strchr(t, ']');
    } else {
        end = strrchr(t, ':');
    }
    if (!end || end == t || (size_t)(end - t) >= outlen)
        return -1;
    memcpy(out, t, (size_t)(end - t));
    out[end - t] = '\0';
    return 0;
}

/* ---- connections ---------------------------------------------------------- */

static struct sy_tls_conn *conn_new(SSL_CTX *ctx, int fd)
{
    struct sy_tls_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    c->wants = EV_READ;
    return c;
}

struct sy_tls_conn *sy_tls_accept(struct sy_tls_server *s, int fd)
{
    struct sy_tls_conn *c = conn_new(s->certs[0].ctx, fd);

    if (c)
        SSL_set_accept_state(c->ssl);
    return c;
}

struct sy_tls_conn *sy_tls_connect(struct sy_tls_client *cl, int fd, const char *server_name)
{
    struct sy_tls_conn *c = conn_new(cl->ctx, fd);
    unsigned char ip[16];
    int ok;

    if (!c)
        return NULL;
    SSL_set_connect_state(c->ssl);
    if (inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), server_name);
    } else {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set_tlsext_host_name(c->ssl, server_name) == 1
             && SSL_set1_host(c->ssl, server_name) == 1;
    }
    if (!ok) {
        ERR_clear_error();
        sy_tls_free(c);
        return NULL;
    }
    return c;
}

/* Maps a failed SSL call to read(2)-style -1/errno (or 0 at close_notify). */
static ssize_t io_failed(struct sy_tls_conn *c, int ret)
{
    int saved = errno;

    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        c->wants = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->wants = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        c->failed = true;
        errno = saved ? saved : ECONNRESET;
        return -1;
    default:
        c->failed = true;
        errno = EPROTO;
        return -1;
    }
}

enum sy_tls_status sy_tls_handshake(struct sy_tls_conn *c)
{
    int ret;

    ERR_clear_error();
    if ((ret = SSL_do_handshake(c->ssl)) == 1)
        return SY_TLS_OK;
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        c->wants = EV_READ;
        return SY_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        c->wants = EV_WRITE;
        return SY_TLS_WANT_WRITE;
    default:
        c->failed = true;
        return SY_TLS_ERROR;
    }
}

ssize_t sy_tls_read(struct sy_tls_conn *c, void *buf, size_t n)
{
    int ret;

    if (n == 0)
        return 0;               /* as read(2); SSL_read would report an error */
    ERR_clear_error();
    errno = 0;
    ret = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return ret > 0 ? ret : io_failed(c, ret);
}

/* Copies up to RECORD_MAX bytes from iov[i] + off onward into stage. */
static size_t gather(char *stage, const struct iovec *iov, int iovcnt, int i, size_t off)
{
    size_t len = 0;

    for (; i < iovcnt && len < RECORD_MAX; i++, off = 0) {
        size_t take = iov[i].iov_len - off;
        if (take > RECORD_MAX - len)
            take = RECORD_MAX - len;
        memcpy(stage + len, (const char *)iov[i].iov_base + off, take);
        len += take;
    }
    return len;
}

/*
 * One SSL_write per record (partial-write mode). A span of RECORD_MAX or
 * more is written in place; smaller iovecs are gathered into one record.
 * The choice depends only on the bytes from the current position, so a
 * retry after EAGAIN hands OpenSSL the same bytes, as it requires.
 */
ssize_t sy_tls_writev(struct sy_tls_conn *c, const struct iovec *iov, int iovcnt)
{
    char stage[RECORD_MAX];
    size_t done = 0, off = 0;
    int i = 0;

    while (i < iovcnt) {
        size_t rest = iov[i].iov_len - off, len;
        const char *p;
        int ret;

        if (rest == 0) {
            i++, off = 0;
            continue;
        }
        if (rest >= RECORD_MAX) {
            p = (const char *)iov[i].iov_base + off;
            len = rest > INT_MAX ? INT_MAX : rest;
        } else {
            p = stage;
            len = gather(stage, iov, iovcnt, i, off);
        }
        ERR_clear_error();
        errno = 0;
        if ((ret = SSL_write(c->ssl, p, (int)len)) <= 0) {
            ssize_t r = io_failed(c, ret);
            return done > 0 ? (ssize_t)done : r;
        }
        done += (size_t)ret;
        for (size_t adv = (size_t)ret; adv > 0; i++, off = 0) {
            if (adv < iov[i].iov_len - off) {
                off += adv;
                break;
            }
            adv -= iov[i].iov_len - off;
        }
    }
    return (ssize_t)done;
}

short sy_tls_wants(const struct sy_tls_conn *c)
{
    return c->wants;
}

/*
 * SSL_pending, not SSL_has_pending: the latter is also true for the first
 * bytes of an incomplete record, which only the socket can complete (and
 * waking at once for them spins the loop). Without read_ahead OpenSSL
 * never holds a whole unprocessed record.
 */
bool sy_tls_pending(const struct sy_tls_conn *c)
{
    return SSL_pending(c->ssl) > 0;
}

void sy_tls_shutdown(struct sy_tls_conn *c)
{
    if (!c->failed && SSL_is_init_finished(c->ssl)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
}

void sy_tls_free(struct sy_tls_conn *c)
{
    if (!c)
        return;
    /* a close without close_notify would evict the session from the cache */
    if (!c->failed)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    free(c);
}

const char *sy_tls_alpn(const struct sy_tls_conn *c)
{
    const unsigned char *p;
    unsigned int len;

    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

const char *sy_tls_sni(const struct sy_tls_conn *c)
{
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *sy_tls_version(const struct sy_tls_conn *c)
{
    return SSL_is_init_finished(c->ssl) ? SSL_get_version(c->ssl) : NULL;
}

const char *sy_tls_cipher(const struct sy_tls_conn *c)
{
    return SSL_is_init_finished(c->ssl) ? SSL_get_cipher_name(c->ssl) : NULL;
}

bool sy_tls_resumed(const struct sy_tls_conn *c)
{
    return SSL_session_reused(c->ssl) == 1;
}
