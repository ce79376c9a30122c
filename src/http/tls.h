/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tls.h: TLS on raw non-blocking sockets (OpenSSL 3). A struct sy_tls_server
 * (one per TLS listener per snapshot) or sy_tls_client (one per TLS pool per
 * snapshot) is built on the main thread and is immutable afterwards; workers
 * wrap each accepted or connected socket in a struct sy_tls_conn, whose
 * read/writev behave like read(2)/writev(2), plus sy_tls_wants().
 */
#ifndef SY_HTTP_TLS_H
#define SY_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "core/conf.h"

struct sy_tls_server;
struct sy_tls_client;
struct sy_tls_conn;

enum sy_tls_status {
    SY_TLS_OK,
    SY_TLS_WANT_READ,           /* wait for EV_READ, then call again */
    SY_TLS_WANT_WRITE,          /* wait for EV_WRITE, then call again */
    SY_TLS_ERROR,               /* give up; sy_tls_error_text() says why */
};

/* One certificate of a listener, for logs and the expiry metric. */
struct sy_tls_cert_info {
    const char *file;           /* the "cert" path, as configured */
    const char *name;           /* first subjectAltName DNS entry, else CN */
    int64_t not_after;          /* seconds since the epoch; may be past */
};

/*
 * Contexts for listener l (l->tls): certs[0] is the default, the others are
 * chosen by SNI. ALPN offers "h2" first when l->http2, then "http/1.1"; pass
 * a copy with http2 false while HTTP/2 is not served. An expired certificate
 * is accepted (see sy_tls_server_certs). On error returns NULL and err reads
 * "tls.certificates[I].cert: cannot load FILE: why", a path relative to the
 * listener: the caller prefixes "CONFFILE: listen[N].". The owner of the
 * snapshot calls sy_tls_server_free() when the snapshot dies; connections
 * accepted on s keep it alive until their sy_tls_free().
 */
struct sy_tls_server *sy_tls_server_new(const struct sy_listen *l, char *err, size_t errlen);
void sy_tls_server_free(struct sy_tls_server *s);

/* s's certificates in configuration order; the array lives as long as s. */
const struct sy_tls_cert_info *sy_tls_server_certs(const struct sy_tls_server *s, size_t *n);
/* Whether a certificate of s names host (any case; "*.example.com" covers one label). */
bool sy_tls_server_serves(const struct sy_tls_server *s, const char *host);

/* notAfter of the first certificate in a PEM file; -1 on error. */
int64_t sy_tls_cert_not_after(const char *pem_path);

/*
 * Context toward pool p's instances (p->tls): TLS 1.2+, the peer verified
 * against p->tls_ca_file, else the system store. On error returns NULL and
 * err reads "tls.ca_file: cannot load FILE: why", relative to the pool.
 */
struct sy_tls_client *sy_tls_client_new(const struct sy_pool *p, char *err, size_t errlen);
void sy_tls_client_free(struct sy_tls_client *cl);

/* The host part of a configured "host:port" / "[v6]:port", for sy_tls_connect. */
int sy_tls_addr_host(const struct sy_addr *a, char *out, size_t outlen);

/*
 * Wrap a connected non-blocking socket; the handshake starts with the first
 * sy_tls_handshake() (or read/write). NULL on allocation failure. The fd
 * stays the caller's: sy_tls_free() does not close it.
 */
struct sy_tls_conn *sy_tls_accept(struct sy_tls_server *s, int fd);
/* server_name: a DNS name (sent as SNI, checked against the certificate) or an IP literal. */
struct sy_tls_conn *sy_tls_connect(struct sy_tls_client *cl, int fd, const char *server_name);

enum sy_tls_status sy_tls_handshake(struct sy_tls_conn *c);

/*
 * read(2)/writev(2) semantics: bytes moved, 0 at end of stream (close_notify
 * or a plain EOF), -1 with errno EAGAIN when it must wait - for the event
 * sy_tls_wants() tells, which may be EV_WRITE for a read and EV_READ for a
 * write - or another errno (EPROTO: a TLS error) when the connection is dead.
 * After -1/EAGAIN from sy_tls_writev, call it again with the same bytes
 * first (more may follow; the buffers may move).
 */
ssize_t sy_tls_read(struct sy_tls_conn *c, void *buf, size_t n);
ssize_t sy_tls_writev(struct sy_tls_conn *c, const struct iovec *iov, int iovcnt);
short sy_tls_wants(const struct sy_tls_conn *c);

/*
 * Decrypted bytes held inside OpenSSL that the socket will not signal: when
 * a reader stops before EAGAIN (its buffer is full) and later resumes, it
 * must read again at once if this is true rather than wait for EV_READ.
 */
bool sy_tls_pending(const struct sy_tls_conn *c);

/* Best-effort close_notify, never blocks; skip it after an error. */
void sy_tls_shutdown(struct sy_tls_conn *c);
void sy_tls_free(struct sy_tls_conn *c);

/* For logs; NULL when there is none (yet). */
const char *sy_tls_alpn(const struct sy_tls_conn *c);      /* "h2" or "http/1.1" */
const char *sy_tls_sni(const struct sy_tls_conn *c);
const char *sy_tls_version(const struct sy_tls_conn *c);   /* "TLSv1.3" */
const char *sy_tls_cipher(const struct sy_tls_conn *c);
bool sy_tls_resumed(const struct sy_tls_conn *c);

/* The thread's oldest queued OpenSSL error as text (for a log line); clears the queue. */
void sy_tls_error_text(char *buf, size_t len);

#endif
