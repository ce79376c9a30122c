/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * test_tls.c: sy_tls_* over non-blocking socketpairs, driven by a poll()
 * loop that waits for what each side asks for. Certificates (a CA, an
 * untrusted CA, a.example.test, *.b.example.test, an expired one, one with
 * only a CN) are made with OpenSSL's C API in a mkdtemp directory.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http/tls.h"

#define VALID_UNTIL   2000000000    /* 2033 */
#define EXPIRED_FROM  1000000000
#define EXPIRED_UNTIL 1500000000

static char dir[64];
static char path_ca[128], path_ca2[128], path_a[128], path_a_key[128], path_b[128];
static char path_b_key[128], path_old[128], path_old_key[128], path_cn[128], path_cn_key[128];
static char path_garbage[128], path_badchain[128], path_enc_key[128];

/* ---- fixtures ------------------------------------------------------------- */

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by issuer (NULL: self-signed). san may be NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
                       EVP_PKEY *issuer_key, time_t not_before, time_t not_after)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), not_after));
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    X509_set_pubkey(x, key);
    if (!issuer) {
        add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
    }
    if (san)
        add_ext(x, issuer, NID_subject_alt_name, san);
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *leaf, X509 *chain, EVP_PKEY *key,
                      const char *password)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (leaf)
        assert_int_equal(PEM_write_X509(fp, leaf), 1);
    if (chain)
        assert_int_equal(PEM_write_X509(fp, chain), 1);
    if (key && password)
        assert_int_equal(PEM_write_PrivateKey(fp, key, EVP_aes_128_cbc(), NULL, 0, NULL,
                                              (void *)password), 1);
    else if (key)
        assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void in_dir(char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", dir, name);
}

/* A leaf signed by ca written as FILE (leaf, then ca) and KEYFILE. */
static void make_leaf(EVP_PKEY *key, const char *cn, const char *san, X509 *ca, EVP_PKEY *ca_key,
                      time_t nb, time_t na, const char *file, const char *keyfile)
{
    X509 *x = make_cert(key, cn, san, ca, ca_key, nb, na);

    write_pem(file, x, ca, NULL, NULL);
    write_pem(keyfile, NULL, NULL, key, NULL);
    X509_free(x);
}

static int setup(void **state)
{
    time_t now = time(NULL);
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *ca2_key = EVP_EC_gen("P-256");
    EVP_PKEY *a_key = EVP_EC_gen("P-256"), *b_key = EVP_RSA_gen(2048);
    EVP_PKEY *old_key = EVP_EC_gen("P-256"), *cn_key = EVP_EC_gen("P-256");
    X509 *ca, *ca2;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/sy-test-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    in_dir(path_ca, "ca.pem");
    in_dir(path_ca2, "ca2.pem");
    in_dir(path_a, "a.pem");
    in_dir(path_a_key, "a.key");
    in_dir(path_b, "b.pem");
    in_dir(path_b_key, "b.key");
    in_dir(path_old, "old.pem");
    in_dir(path_old_key, "old.key");
    in_dir(path_cn, "cn.pem");
    in_dir(path_cn_key, "cn.key");
    in_dir(path_garbage, "garbage.pem");
    in_dir(path_badchain, "badchain.pem");
    in_dir(path_enc_key, "enc.key");

    ca = make_cert(ca_key, "Switchyard Test CA", NULL, NULL, NULL, now - 86400, VALID_UNTIL);
    ca2 = make_cert(ca2_key, "Untrusted CA", NULL, NULL, NULL, now - 86400, VALID_UNTIL);
    write_pem(path_ca, ca, NULL, NULL, NULL);
    write_pem(path_ca2, ca2, NULL, NULL, NULL);
    make_leaf(a_key, "a.example.test", "DNS:a.example.test,IP:127.0.0.1", ca, ca_key,
              now - 86400, VALID_UNTIL, path_a, path_a_key);
    make_leaf(b_key, "*.b.example.test", "DNS:*.b.example.test", ca, ca_key,
              now - 86400, VALID_UNTIL, path_b, path_b_key);
    make_leaf(old_key, "old.example.test", "DNS:old.example.test", ca, ca_key,
              EXPIRED_FROM, EXPIRED_UNTIL, path_old, path_old_key);
    make_leaf(cn_key, "cn.example.test", NULL, ca, ca_key, now - 86400, VALID_UNTIL,
              path_cn, path_cn_key);
    write_text(path_garbage, "this is not PEM\n");
    write_pem(path_badchain, ca, NULL, NULL, NULL);
    {
        FILE *fp = fopen(path_badchain, "a");
        assert_non_null(fp);
        fputs("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", fp);
        fclose(fp);
    }
    write_pem(path_enc_key, NULL, NULL, a_key, "secret");

    X509_free(ca);
    X509_free(ca2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ca2_key);
    EVP_PKEY_free(a_key);
    EVP_PKEY_free(b_key);
    EVP_PKEY_free(old_key);
    EVP_PKEY_free(cn_key);
    return 0;
}

static int teardown(void **state)
{
    const char *files[] = {path_ca, path_ca2, path_a, path_a_key, path_b, path_b_key,
                           path_old, path_old_key, path_cn, path_cn_key, path_garbage,
                           path_badchain, path_enc_key};

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

/* ---- listeners ------------------------------------------------------------ */

/* a (default), *.b, expired, CN-only. */
static struct sy_tls_cert four_certs[4];

static struct sy_listen listener(bool http2)
{
    four_certs[0] = (struct sy_tls_cert){path_a, path_a_key};
    four_certs[1] = (struct sy_tls_cert){path_b, path_b_key};
    four_certs[2] = (struct sy_tls_cert){path_old, path_old_key};
    four_certs[3] = (struct sy_tls_cert){path_cn, path_cn_key};
    return (struct sy_listen){.tls = true, .http2 = http2, .certs = four_certs, .ncerts = 4};
}

static struct sy_tls_server *server_new(bool http2)
{
    struct sy_listen l = listener(http2);
    char err[512] = "";
    struct sy_tls_server *s = sy_tls_server_new(&l, err, sizeof(err));

    if (!s)
        fail_msg("sy_tls_server_new: %s", err);
    return s;
}

/* A plain OpenSSL client trusting the test CA, TLS 1.2 to max_version. */
static SSL_CTX *client_ctx(int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, path_ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    return ctx;
}

/* ---- a socketpair with a TLS conversation on it ---------------------------- */

/* One end: a plain OpenSSL SSL (a test peer) or one of ours. */
struct end {
    int fd;
    SSL *ssl;
    struct sy_tls_conn *tc;
    short wants;                /* POLLIN / POLLOUT */
    int state;                  /* 0: handshaking, 1: done, -1: failed */
    char why[256];              /* the error, when failed */
};

struct pair {
    struct end cli, srv;
};

static void pair_open(struct pair *p)
{
    int fds[2];

    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    p->cli.fd = fds[0];
    p->srv.fd = fds[1];
}

static void pair_client_ssl(struct pair *p, SSL_CTX *ctx, const char *sni)
{
    assert_non_null(p->cli.ssl = SSL_new(ctx));
    assert_int_equal(SSL_set_fd(p->cli.ssl, p->cli.fd), 1);
    SSL_set_connect_state(p->cli.ssl);
    if (sni)
        assert_int_equal(SSL_set_tlsext_host_name(p->cli.ssl, sni), 1);
}

static void pair_accept(struct pair *p, struct sy_tls_server *s)
{
    assert_non_null(p->srv.tc = sy_tls_accept(s, p->srv.fd));
}

static void pair_close(struct pair *p)
{
    SSL_free(p->cli.ssl);
    sy_tls_free(p->cli.tc);
    sy_tls_free(p->srv.tc);
    if (p->cli.fd >= 0)
        close(p->cli.fd);
    close(p->srv.fd);
}

static short poll_events(short ev)
{
    return ev == EV_WRITE ? POLLOUT : POLLIN;
}

static void step_handshake(struct end *e)
{
    if (e->tc) {
        enum sy_tls_status st = sy_tls_handshake(e->tc);
        e->state = st == SY_TLS_OK ? 1 : st == SY_TLS_ERROR ? -1 : 0;
        if (st == SY_TLS_ERROR)
            sy_tls_error_text(e->why, sizeof(e->why));
        if (st == SY_TLS_WANT_READ || st == SY_TLS_WANT_WRITE) {
            assert_int_equal(sy_tls_wants(e->tc), st == SY_TLS_WANT_READ ? EV_READ : EV_WRITE);
            e->wants = poll_events(sy_tls_wants(e->tc));
        }
        return;
    }
    int r = SSL_do_handshake(e->ssl);
    if (r == 1) {
        e->state = 1;
        return;
    }
    switch (SSL_get_error(e->ssl, r)) {
    case SSL_ERROR_WANT_READ: e->wants = POLLIN; break;
    case SSL_ERROR_WANT_WRITE: e->wants = POLLOUT; break;
    default:
        e->state = -1;
        sy_tls_error_text(e->why, sizeof(e->why));
        break;
    }
}

/* Waits for what the unfinished ends want; false when nothing can move. */
static bool wait_ends(struct end *a, struct end *b)
{
    struct pollfd pf[2] = {
        {a->fd, a->state == 0 ? a->wants : 0, 0},
        {b->fd, b->state == 0 ? b->wants : 0, 0},
    };

    return poll(pf, 2, 200) > 0;
}

/* Both handshakes to the end; returns true when both succeeded. */
static bool handshake(struct pair *p)
{
    for (int round = 0; round < 200; round++) {
        if (p->cli.state == 0)
            step_handshake(&p->cli);
        if (p->srv.state == 0)
            step_handshake(&p->srv);
        if (p->cli.state != 0 && p->srv.state != 0)
            break;
        if (!wait_ends(&p->cli, &p->srv))
            break;
    }
    return p->cli.state == 1 && p->srv.state == 1;
}

/* The CN of the certificate the client got. */
static void peer_cn(SSL *ssl, char *out, size_t outlen)
{
    X509 *x = SSL_get1_peer_certificate(ssl);

    assert_non_null(x);
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out,
                                          (int)outlen) > 0);
    X509_free(x);
}

/* Handshake with SNI name (NULL: none); returns the served certificate's CN. */
static void served_cn(struct sy_tls_server *s, const char *sni, char *cn, size_t cnlen)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;

    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);     /* one is expired */
    pair_open(&p);
    pair_client_ssl(&p, ctx, sni);
    pair_accept(&p, s);
    if (!handshake(&p))
        fail_msg("SNI %s: client: %s, server: %s", sni ? sni : "(none)", p.cli.why, p.srv.why);
    peer_cn(p.cli.ssl, cn, cnlen);
    pair_close(&p);
    SSL_CTX_free(ctx);
}

/* ---- certificates and SNI -------------------------------------------------- */

static void test_cert_not_after(void **state)
{
    (void)state;
    assert_int_equal(sy_tls_cert_not_after(path_a), VALID_UNTIL);
    assert_int_equal(sy_tls_cert_not_after(path_old), EXPIRED_UNTIL);
    assert_int_equal(sy_tls_cert_not_after("/nonexistent/x.pem"), -1);
    assert_int_equal(sy_tls_cert_not_after(path_garbage), -1);
    assert_int_equal(sy_tls_cert_not_after(path_a_key), -1);
}

static void test_server_cert_list(void **state)
{
    struct sy_tls_server *s = server_new(false);
    const struct sy_tls_cert_info *info;
    size_t n;

    (void)state;
    info = sy_tls_server_certs(s, &n);
    assert_int_equal(n, 4);
    assert_string_equal(info[0].file, path_a);
    assert_string_equal(info[0].name, "a.example.test");
    assert_int_equal(info[0].not_after, VALID_UNTIL);
    assert_string_equal(info[1].name, "*.b.example.test");
    assert_string_equal(info[2].file, path_old);
    assert_int_equal(info[2].not_after, EXPIRED_UNTIL);     /* expired: allowed */
    assert_string_equal(info[3].name, "cn.example.test");
    sy_tls_server_free(s);
}

static void test_sni_picks_certificate(void **state)
{
    static const struct {
        const char *sni, *cn;
    } cases[] = {
        {"a.example.test", "a.example.test"},
        {"x.b.example.test", "*.b.example.test"},
        {"X.B.Example.TEST", "*.b.example.test"},
        {"x.b.example.test.", "*.b.example.test"},
        {"old.example.test", "old.example.test"},
        {"cn.example.test", "cn.example.test"},
        /* a wildcard covers exactly one label */
        {"b.example.test", "a.example.test"},
        {"y.x.b.example.test", "a.example.test"},
        {"unknown.example.test", "a.example.test"},
        {NULL, "a.example.test"},
    };
    struct sy_tls_server *s = server_new(false);
    char cn[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        served_cn(s, cases[i].sni, cn, sizeof(cn));
        if (strcmp(cn, cases[i].cn) != 0)
            fail_msg("SNI %s: got %s, want %s", cases[i].sni ? cases[i].sni : "(none)", cn,
                     cases[i].cn);
    }
    sy_tls_server_free(s);
}

static void test_single_certificate(void **state)
{
    struct sy_tls_cert one = {path_b, path_b_key};
    struct sy_listen l = {.tls = true, .certs = &one, .ncerts = 1};
    char err[256], cn[256];
    struct sy_tls_server *s = sy_tls_server_new(&l, err, sizeof(err));

    (void)state;
    assert_non_null(s);
    served_cn(s, "a.example.test", cn, sizeof(cn));
    assert_string_equal(cn, "*.b.example.test");
    sy_tls_server_free(s);
}

/* A reload frees the listener's contexts while a handshake is still under way. */
static void test_server_freed_during_handshake(void **state)
{
    struct sy_tls_server *s = server_new(false);
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    char cn[256], buf[8];

    (void)state;
    pair_open(&p);
    pair_client_ssl(&p, ctx, "x.b.example.test");
    pair_accept(&p, s);
    step_handshake(&p.cli);         /* the ClientHello is on its way */
    sy_tls_server_free(s);
    assert_true(handshake(&p));
    peer_cn(p.cli.ssl, cn, sizeof(cn));
    assert_string_equal(cn, "*.b.example.test");
    assert_int_equal(sy_tls_writev(p.srv.tc, &(struct iovec){"ok", 2}, 1), 2);
    assert_int_equal(SSL_read(p.cli.ssl, buf, sizeof(buf)), 2);
    pair_close(&p);                 /* the last reference: frees s */
    SSL_CTX_free(ctx);
}

/* ---- protocol ------------------------------------------------------------- */

static void test_tls11_refused(void **state)
{
    struct sy_tls_server *s = server_new(false);
    SSL_CTX *ctx = client_ctx(TLS1_1_VERSION);
    struct pair p;

    (void)state;
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    /* let the client really offer 1.1, so that it is the server that refuses */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
    pair_open(&p);
    pair_client_ssl(&p, ctx, "a.example.test");
    pair_accept(&p, s);
    assert_false(handshake(&p));
    assert_int_equal(p.srv.state, -1);
    assert_string_equal(p.srv.why, "unsupported protocol");
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

static void test_tls12_accepted(void **state)
{
    struct sy_tls_server *s = server_new(false);
    SSL_CTX *ctx = client_ctx(TLS1_2_VERSION);
    struct pair p;

    (void)state;
    pair_open(&p);
    pair_client_ssl(&p, ctx, "x.b.example.test");   /* RSA certificate */
    pair_accept(&p, s);
    assert_true(handshake(&p));
    assert_string_equal(sy_tls_version(p.srv.tc), "TLSv1.2");
    assert_string_equal(sy_tls_cipher(p.srv.tc), "ECDHE-RSA-AES128-GCM-SHA256");
    pair_close(&p);
    pair_open(&p);
    pair_client_ssl(&p, ctx, "a.example.test");     /* EC certificate */
    pair_accept(&p, s);
    assert_true(handshake(&p));
    assert_string_equal(sy_tls_cipher(p.srv.tc), "ECDHE-ECDSA-AES128-GCM-SHA256");
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

/* Negotiated ALPN protocol (or NULL) for a client offering wire-format list. */
static const char *alpn_with(bool http2, const unsigned char *list, unsigned len)
{
    struct sy_tls_server *s = server_new(http2);
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    const char *got;

    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, list, len), 0);
    pair_open(&p);
    pair_client_ssl(&p, ctx, "a.example.test");
    pair_accept(&p, s);
    assert_true(handshake(&p));
    got = sy_tls_alpn(p.srv.tc);
    assert_string_equal(sy_tls_version(p.srv.tc), "TLSv1.3");
    assert_non_null(sy_tls_cipher(p.srv.tc));
    assert_string_equal(sy_tls_sni(p.srv.tc), "a.example.test");
    assert_false(sy_tls_resumed(p.srv.tc));
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
    return got;
}

static void test_alpn(void **state)
{
    static const unsigned char h2_h1[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1",
                               spdy[] = "\x06spdy/3";
    const char *got;

    (void)state;
    assert_string_equal(alpn_with(false, h2_h1, sizeof(h2_h1) - 1), "http/1.1");
    assert_string_equal(alpn_with(true, h2_h1, sizeof(h2_h1) - 1), "h2");
    assert_string_equal(alpn_with(true, h1, sizeof(h1) - 1), "http/1.1");
    got = alpn_with(false, spdy, sizeof(spdy) - 1);
    assert_null(got);
}

/* ---- data ----------------------------------------------------------------- */

/* An established pair: an OpenSSL client and our server. */
static struct sy_tls_server *open_session(struct pair *p, SSL_CTX *ctx)
{
    struct sy_tls_server *s = server_new(false);

    pair_open(p);
    pair_client_ssl(p, ctx, "a.example.test");
    pair_accept(p, s);
    assert_true(handshake(p));
    return s;
}

/* The first bytes of a record are not "pending": only the socket can complete them. */
static void test_partial_record_not_pending(void **state)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    struct sy_tls_server *s = open_session(&p, ctx);
    char buf[64];

    (void)state;
    assert_int_equal(write(p.cli.fd, "\x17\x03\x03", 3), 3);
    assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    assert_false(sy_tls_pending(p.srv.tc));
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

static void test_read_small(void **state)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    struct sy_tls_server *s = open_session(&p, ctx);
    char buf[64];
    ssize_t n;

    (void)state;
    n = sy_tls_read(p.srv.tc, buf, sizeof(buf));
    assert_int_equal(n, -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(sy_tls_wants(p.srv.tc), EV_READ);
    assert_int_equal(SSL_write(p.cli.ssl, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    n = sy_tls_read(p.srv.tc, buf, 4);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "GET ", 4);
    /* the rest of the record sits in OpenSSL, invisible to poll() */
    assert_true(sy_tls_pending(p.srv.tc));
    n = sy_tls_read(p.srv.tc, buf, sizeof(buf));
    assert_int_equal(n, 14);
    assert_false(sy_tls_pending(p.srv.tc));
    assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

/* Drops the first n bytes of the iovec list (as sy_iovq does). */
static int iov_advance(struct iovec **iov, int cnt, size_t n)
{
    while (n > 0 && cnt > 0) {
        if (n < (*iov)->iov_len) {
            (*iov)->iov_base = (char *)(*iov)->iov_base + n;
            (*iov)->iov_len -= n;
            return cnt;
        }
        n -= (*iov)->iov_len;
        (*iov)++;
        cnt--;
    }
    while (cnt > 0 && (*iov)->iov_len == 0) {
        (*iov)++;
        cnt--;
    }
    return cnt;
}

/* Reads whatever the client can get now into buf at *got. */
static void client_drain(SSL *ssl, unsigned char *buf, size_t cap, size_t *got)
{
    for (;;) {
        int r = SSL_read(ssl, buf + *got, (int)(cap - *got > 65536 ? 65536 : cap - *got));
        if (r <= 0) {
            assert_int_equal(SSL_get_error(ssl, r), SSL_ERROR_WANT_READ);
            return;
        }
        *got += (size_t)r;
    }
}

static void test_writev_large(void **state)
{
    enum { TOTAL = 1 << 20 };
    static const size_t sizes[] = {1, 7, 300, 5000, 20000, 16384, 2, 70000, 16383, 9};
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    struct sy_tls_server *s = open_session(&p, ctx);
    unsigned char *data = malloc(TOTAL), *recv = malloc(TOTAL);
    struct iovec vecs[512], *iov = vecs;
    int cnt = 0, sndbuf = 8192, eagain = 0, shorts = 0;
    size_t off = 0, got = 0;

    (void)state;
    assert_non_null(data);
    assert_non_null(recv);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = (unsigned char)(i * 31 + (i >> 13));
    for (size_t k = 0; off < TOTAL; k++, cnt++) {
        size_t len = sizes[k % 10] < TOTAL - off ? sizes[k % 10] : TOTAL - off;
        assert_true(cnt < 512);
        vecs[cnt] = (struct iovec){data + off, len};
        off += len;
    }
    setsockopt(p.srv.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    while (cnt > 0) {
        size_t want = 0;
        for (int i = 0; i < cnt; i++)
            want += iov[i].iov_len;
        ssize_t n = sy_tls_writev(p.srv.tc, iov, cnt);
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            assert_int_equal(sy_tls_wants(p.srv.tc), EV_WRITE);
            eagain++;
            client_drain(p.cli.ssl, recv, TOTAL, &got);
            continue;
        }
        if ((size_t)n < want)
            shorts++;
        cnt = iov_advance(&iov, cnt, (size_t)n);
    }
    while (got < TOTAL) {
        struct pollfd pf = {p.cli.fd, POLLIN, 0};
        assert_true(poll(&pf, 1, 200) > 0);
        client_drain(p.cli.ssl, recv, TOTAL, &got);
    }
    assert_true(eagain > 0);
    assert_true(shorts > 0);
    assert_memory_equal(recv, data, TOTAL);
    free(data);
    free(recv);
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

/* Many small iovecs leave as few records: the client sees one read per 16 KiB. */
static void test_writev_coalesces(void **state)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    struct sy_tls_server *s = open_session(&p, ctx);
    char parts[100][10], buf[2000];
    struct iovec iov[100];
    size_t got = 0;

    (void)state;
    for (int i = 0; i < 100; i++) {
        memset(parts[i], 'a' + i % 26, sizeof(parts[i]));
        iov[i] = (struct iovec){parts[i], sizeof(parts[i])};
    }
    assert_int_equal(sy_tls_writev(p.srv.tc, iov, 100), 1000);
    assert_int_equal(sy_tls_writev(p.srv.tc, iov, 0), 0);
    /* one record: one SSL_read returns all of it */
    int r = SSL_read(p.cli.ssl, buf, sizeof(buf));
    assert_int_equal(r, 1000);
    for (int i = 0; i < 100; i++, got += 10)
        assert_memory_equal(buf + got, parts[i], 10);
    pair_close(&p);
    SSL_CTX_free(ctx);
    sy_tls_server_free(s);
}

/* ---- resumption ------------------------------------------------------------ */

/*
 * A full handshake on s1, then a resumed one on s2 (s2 may be s1); with
 * no_ticket, the resumption comes from s1's session cache.
 */
static void check_resumption(int version, struct sy_tls_server *s1, struct sy_tls_server *s2,
                             bool no_ticket)
{
    SSL_CTX *ctx = client_ctx(version);
    SSL_SESSION *sess;
    struct pair p;
    char buf[8];

    if (no_ticket)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    pair_open(&p);
    pair_client_ssl(&p, ctx, "x.b.example.test");
    pair_accept(&p, s1);
    assert_true(handshake(&p));
    assert_false(sy_tls_resumed(p.srv.tc));
    /* TLS 1.3 tickets come after the handshake: let the client read them */
    assert_int_equal(sy_tls_writev(p.srv.tc, &(struct iovec){"hi", 2}, 1), 2);
    assert_int_equal(SSL_read(p.cli.ssl, buf, sizeof(buf)), 2);
    assert_non_null(sess = SSL_get1_session(p.cli.ssl));
    assert_true(SSL_SESSION_is_resumable(sess));
    assert_int_equal(SSL_shutdown(p.cli.ssl), 0);
    pair_close(&p);

    pair_open(&p);
    pair_client_ssl(&p, ctx, "x.b.example.test");
    assert_int_equal(SSL_set_session(p.cli.ssl, sess), 1);
    pair_accept(&p, s2);
    assert_true(handshake(&p));
    if (!SSL_session_reused(p.cli.ssl))
        fail_msg("%s: not resumed", version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2");
    assert_true(sy_tls_resumed(p.srv.tc));
    assert_string_equal(sy_tls_sni(p.srv.tc), "x.b.example.test");
    pair_close(&p);
    SSL_SESSION_free(sess);
    SSL_CTX_free(ctx);
}

static void test_resumption(void **state)
{
    struct sy_tls_server *s = server_new(false), *reloaded = server_new(false);

    (void)state;
    check_resumption(TLS1_3_VERSION, s, s, false);
    check_resumption(TLS1_2_VERSION, s, s, false);
    check_resumption(TLS1_2_VERSION, s, s, true);
    /* the ticket key is per process: a reloaded snapshot resumes too */
    check_resumption(TLS1_3_VERSION, s, reloaded, false);
    check_resumption(TLS1_2_VERSION, s, reloaded, false);
    sy_tls_server_free(s);
    sy_tls_server_free(reloaded);
}

/* ---- closing --------------------------------------------------------------- */

static void test_shutdown(void **state)
{
    SSL_CTX *ctx = client_ctx(TLS1_3_VERSION);
    struct pair p;
    struct sy_tls_server *s = open_session(&p, ctx);
    char buf[16];

    (void)state;
    /* ours sends close_notify: the client reads a clean end */
    sy_tls_shutdown(p.srv.tc);
    assert_int_equal(SSL_read(p.cli.ssl, buf, sizeof(buf)), 0);
    assert_int_equal(SSL_get_error(p.cli.ssl, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);
    sy_tls_server_free(s);

    /* the client sends close_notify: ours reads 0 */
    s = open_session(&p, ctx);
    assert_int_equal(SSL_shutdown(p.cli.ssl), 0);
    assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), 0);
    pair_close(&p);
    sy_tls_server_free(s);

    /* a plain EOF reads 0 too (the client takes its session tickets first) */
    s = open_session(&p, ctx);
    assert_int_equal(SSL_read(p.cli.ssl, buf, sizeof(buf)), -1);
    close(p.cli.fd);
    p.cli.fd = -1;
    assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), 0);
    pair_close(&p);
    sy_tls_server_free(s);

    /* closing with unread bytes resets the connection: an error */
    s = open_session(&p, ctx);
    close(p.cli.fd);
    p.cli.fd = -1;
    assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), -1);
    assert_int_equal(errno, ECONNRESET);
    sy_tls_shutdown(p.srv.tc);      /* after an error: does nothing */
    pair_close(&p);
    sy_tls_server_free(s);
    SSL_CTX_free(ctx);
}

static void test_handshake_garbage(void **state)
{
    struct sy_tls_server *s = server_new(false);
    struct pair p;
    char why[256];

    (void)state;
    pair_open(&p);
    pair_accept(&p, s);
    assert_int_equal(write(p.cli.fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    assert_int_equal(sy_tls_handshake(p.srv.tc), SY_TLS_ERROR);
    sy_tls_error_text(why, sizeof(why));
    assert_string_equal(why, "http request");
    assert_null(sy_tls_version(p.srv.tc));
    assert_null(sy_tls_alpn(p.srv.tc));
    sy_tls_shutdown(p.srv.tc);      /* after an error: does nothing */
    pair_close(&p);
    sy_tls_server_free(s);
}

/* ---- upstream client ------------------------------------------------------ */

/* Our client to our server; returns the client's handshake result (1 or -1). */
static int upstream_handshake(const char *ca_file, const char *name)
{
    struct sy_pool pool = {.name = "app", .tls = true, .tls_ca_file = (char *)ca_file};
    struct sy_tls_server *s = server_new(false);
    char err[256] = "";
    struct sy_tls_client *cl = sy_tls_client_new(&pool, err, sizeof(err));
    struct pair p;
    int state;

    if (!cl)
        fail_msg("sy_tls_client_new: %s", err);
    pair_open(&p);
    assert_non_null(p.cli.tc = sy_tls_connect(cl, p.cli.fd, name));
    pair_accept(&p, s);
    handshake(&p);
    state = p.cli.state;
    if (state == 1) {
        char buf[8];
        assert_string_equal(sy_tls_alpn(p.cli.tc), "http/1.1");
        assert_string_equal(sy_tls_alpn(p.srv.tc), "http/1.1");
        assert_int_equal(sy_tls_writev(p.cli.tc, &(struct iovec){"ping", 4}, 1), 4);
        assert_int_equal(sy_tls_read(p.srv.tc, buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "ping", 4);
    }
    pair_close(&p);
    sy_tls_client_free(cl);
    sy_tls_server_free(s);
    return state;
}

static void test_upstream_verified(void **state)
{
    (void)state;
    assert_int_equal(upstream_handshake(path_ca, "a.example.test"), 1);
    assert_int_equal(upstream_handshake(path_ca, "x.b.example.test"), 1);
    assert_int_equal(upstream_handshake(path_ca, "127.0.0.1"), 1);
}

static void test_upstream_refused(void **state)
{
    (void)state;
    assert_int_equal(upstream_handshake(path_ca, "wrong.example.test"), -1);
    assert_int_equal(upstream_handshake(path_ca, "127.0.0.2"), -1);
    assert_int_equal(upstream_handshake(path_ca, "b.example.test"), -1);
    assert_int_equal(upstream_handshake(path_ca2, "a.example.test"), -1);
    /* the system store does not know the test CA */
    assert_int_equal(upstream_handshake(NULL, "a.example.test"), -1);
    assert_int_equal(upstream_handshake(path_ca, "old.example.test"), -1);     /* expired */
}

static void test_addr_host(void **state)
{
    static const struct {
        const char *text, *host;
    } cases[] = {
        {"app.internal:443", "app.internal"},
        {"127.0.0.1:8443", "127.0.0.1"},
        {"[::1]:8443", "::1"},
        {"noport", NULL},
        {":80", NULL},
        {"[]:80", NULL},
    };
    char host[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sy_addr a = {0};
        snprintf(a.text, sizeof(a.text), "%s", cases[i].text);
        if (!cases[i].host) {
            assert_int_equal(sy_tls_addr_host(&a, host, sizeof(host)), -1);
            continue;
        }
        assert_int_equal(sy_tls_addr_host(&a, host, sizeof(host)), 0);
        assert_string_equal(host, cases[i].host);
    }
}

/* ---- configuration errors -------------------------------------------------- */

static void expect_server_error(const char *cert, const char *key, bool second,
                                const char *want)
{
    struct sy_tls_cert certs[2] = {{path_a, path_a_key}, {(char *)cert, (char *)key}};
    struct sy_listen l = {.tls = true, .certs = second ? certs : certs + 1,
                          .ncerts = second ? 2 : 1};
    char err[512] = "";
    struct sy_tls_server *s = sy_tls_server_new(&l, err, sizeof(err));

    assert_null(s);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got \"%s\", want \"%s...\"", err, want);
}

static void test_server_errors(void **state)
{
    char want[512];
    struct sy_listen none = {.tls = true};
    char err[256];

    (void)state;
    expect_server_error("/x", path_a_key, false, "tls.certificates[0].cert: cannot load /x: "
                        "No such file or directory");
    snprintf(want, sizeof(want), "tls.certificates[1].key: cannot load /nope.key: "
             "No such file or directory");
    expect_server_error(path_b, "/nope.key", true, want);
    snprintf(want, sizeof(want), "tls.certificates[0].cert: cannot load %s: no certificate found",
             path_garbage);
    expect_server_error(path_garbage, path_a_key, false, want);
    snprintf(want, sizeof(want), "tls.certificates[0].cert: cannot load %s: no certificate found",
             path_a_key);
    expect_server_error(path_a_key, path_a_key, false, want);
    snprintf(want, sizeof(want), "tls.certificates[0].key: cannot load %s: no private key found",
             path_a);
    expect_server_error(path_a, path_a, false, want);
    snprintf(want, sizeof(want), "tls.certificates[1].key: %s does not match the certificate in %s",
             path_a_key, path_b);
    expect_server_error(path_b, path_a_key, true, want);
    snprintf(want, sizeof(want), "tls.certificates[0].key: %s does not match the certificate in %s",
             path_cn_key, path_a);
    expect_server_error(path_a, path_cn_key, false, want);
    snprintf(want, sizeof(want), "tls.certificates[0].cert: cannot load the chain in %s: ",
             path_badchain);
    expect_server_error(path_badchain, path_a_key, false, want);
    snprintf(want, sizeof(want), "tls.certificates[0].key: cannot load %s: "
             "encrypted keys are not supported", path_enc_key);
    expect_server_error(path_a, path_enc_key, false, want);
    assert_null(sy_tls_server_new(&none, err, sizeof(err)));
    assert_string_equal(err, "tls.certificates: must not be empty");
    assert_int_equal(ERR_peek_error(), 0);      /* nothing left in the error queue */
}

static void test_client_errors(void **state)
{
    static const struct {
        const char *file, *why;
    } cases[] = {
        {"/nope/ca.pem", "No such file or directory"},
        {NULL, "no certificate found"},     /* path_garbage */
    };
    char err[512], want[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *file = cases[i].file ? cases[i].file : path_garbage;
        struct sy_pool pool = {.name = "app", .tls = true, .tls_ca_file = (char *)file};
        assert_null(sy_tls_client_new(&pool, err, sizeof(err)));
        snprintf(want, sizeof(want), "tls.ca_file: cannot load %s: %s", file, cases[i].why);
        assert_string_equal(err, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_not_after),
        cmocka_unit_test(test_server_cert_list),
        cmocka_unit_test(test_sni_picks_certificate),
        cmocka_unit_test(test_single_certificate),
        cmocka_unit_test(test_server_freed_during_handshake),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_tls12_accepted),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_read_small),
        cmocka_unit_test(test_partial_record_not_pending),
        cmocka_unit_test(test_writev_large),
        cmocka_unit_test(test_writev_coalesces),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_handshake_garbage),
        cmocka_unit_test(test_upstream_verified),
        cmocka_unit_test(test_upstream_refused),
        cmocka_unit_test(test_addr_host),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_client_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
