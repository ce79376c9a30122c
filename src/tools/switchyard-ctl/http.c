/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * http.c: the one HTTP exchange a command makes, as a small blocking
 * client. Why not libevent's evhttp client: one synchronous exchange needs
 * no event loop, and evhttp hides what an operator must read when the
 * gateway is unreachable (a refused connect reaches its callback as
 * ENOTCONN) and tries only the first address of a name ("localhost" is
 * often ::1 first while the admin listens on 127.0.0.1). The parsing is
 * not home-made: the answer goes through the gateway's own strict parser
 * and chunked decoder (src/http/parser.h). One deadline, CTL_TIMEOUT_S,
 * bounds the whole exchange, connect to last byte.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sy_auto.h"
#include "http/parser.h"
#include "ctl.h"

#define CTL_TIMEOUT_S 5
#define MAX_HEAD (64 * 1024)
#define MAX_HEADERS 100
#define MAX_BODY (64 << 20)     /* a pools answer of 100k instances fits */

/* Why an exchange failed, for the one message naming the URL. */
struct failure {
    char addr[NI_MAXHOST];      /* the address tried last, "" before any */
    int err;                    /* errno, 0 when why says it */
    const char *why;
    char detail[160];           /* room for a composed why */
};

/* A byte buffer that refuses to grow past MAX_BODY + MAX_HEAD. */
struct bytes {
    char *data;
    size_t len, cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 0, or -1 with errno ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left;
    int n;

    do {
        left = deadline_ms - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        n = poll(&p, 1, (int)left);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        errno = ETIMEDOUT;
    return n > 0 ? 0 : -1;
}

static int bytes_reserve(struct bytes *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 16384;
    char *data;

    if (b->len + more + 1 <= b->cap)
        return 0;
    if (b->len + more + 1 > MAX_BODY + MAX_HEAD)
        return -1;
    while (cap < b->len + more + 1)
        cap *= 2;
    if ((data = realloc(b->data, cap)) == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int bytes_add(struct bytes *b, const char *p, size_t n)
{
    if (bytes_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* A non-blocking connect to one address, finished before the deadline. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline_ms) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
        if (err == 0)
            return fd;
        errno = err;
    }
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* Every address of the host in turn, as curl does; the first that accepts. */
static int connect_host(struct ctl *ctl, int64_t deadline_ms, struct failure *f)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    char port[16];
    int gai, fd = -1;

    snprintf(port, sizeof(port), "%d", ctl->port);
    if ((gai = getaddrinfo(ctl->host, port, &hints, &list)) != 0) {
        snprintf(f->addr, sizeof(f->addr), "%s", ctl->host);
        f->err = gai == EAI_SYSTEM ? errno : 0;
        f->why = gai_strerror(gai);
        return -1;
    }
    for (const struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, f->addr, sizeof(f->addr), NULL, 0,
                        NI_NUMERICHOST) != 0)
            snprintf(f->addr, sizeof(f->addr), "%s", ctl->host);
        fd = connect_addr(ai, deadline_ms);
        f->err = fd < 0 ? errno : 0;
        if (f->err == ETIMEDOUT)
            break;          /* the deadline is spent: no time for the next one */
    }
    freeaddrinfo(list);
    return fd;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline_ms)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        } else if (k < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline_ms) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The request: a small head, then the JSON body if any. The token is in
 * it: the caller wipes it before freeing. */
static int format_request(struct ctl *ctl, const char *method, const char *uri,
                          const char *body, struct bytes *out)
{
    char line[512];
    int post = strcmp(method, "POST") == 0;
    int ok;

    snprintf(line, sizeof(line), strchr(ctl->host, ':') ? "[%s]" : "%s", ctl->host);
    if (ctl->port != 80)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), ":%d", ctl->port);
    ok = bytes_add(out, method, strlen(method)) == 0 && bytes_add(out, " ", 1) == 0 &&
         bytes_add(out, uri, strlen(uri)) == 0 &&
         bytes_add(out, " HTTP/1.1\r\nHost: ", 17) == 0 &&
         bytes_add(out, line, strlen(line)) == 0;
    snprintf(line, sizeof(line), "\r\nUser-Agent: " CTL_NAME "/" SY_VERSION
             "\r\nAccept: application/json\r\nConnection: close\r\n");
    ok = ok && bytes_add(out, line, strlen(line)) == 0;
    if (ctl->token)
        ok = ok && bytes_add(out, "Authorization: Bearer ", 22) == 0 &&
             bytes_add(out, ctl->token, strlen(ctl->token)) == 0 &&
             bytes_add(out, "\r\n", 2) == 0;
    if (body)
        ok = ok && bytes_add(out, "Content-Type: application/json\r\n", 32) == 0;
    /* A POST says its length, even 0, so that no server waits for a body. */
    line[0] = '\0';
    if (post)
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", body ? strlen(body) : 0);
    ok = ok && bytes_add(out, line, strlen(line)) == 0 && bytes_add(out, "\r\n", 2) == 0;
    if (body)
        ok = ok && bytes_add(out, body, strlen(body)) == 0;
    return ok ? 0 : -1;
}

/* The body once the head is parsed: 1 complete, 0 need more, -1 bad. */
static int take_body(const struct sy_http_head *head, struct bytes *raw, int eof,
                     struct sy_chunked *ch, size_t *decoded, struct bytes *body,
                     struct failure *f)
{
    size_t have = raw->len - head->head_len;

    switch (head->body) {
    case SY_BODY_NONE:
        return 1;
    case SY_BODY_LENGTH:
        if (head->content_length > MAX_BODY) {
            f->why = "the answer is larger than 64 MiB";
            return -1;
        }
        if (have < head->content_length)
            return 0;
        return bytes_add(body, raw->data + head->head_len, head->content_length) == 0 ? 1 : -1;
    case SY_BODY_UNTIL_CLOSE:
        if (!eof)
            return 0;
        return bytes_add(body, raw->data + head->head_len, have) == 0 ? 1 : -1;
    case SY_BODY_CHUNKED:
        while (*decoded < raw->len) {
            size_t used, off, len;
            enum sy_chunk_status st = sy_chunked_decode(ch, raw->data + *decoded,
                                                        raw->len - *decoded, &used, &off, &len);

            if (st == SY_CHUNK_DATA && bytes_add(body, raw->data + *decoded + off, len) < 0) {
                f->why = "the answer is larger than 64 MiB";
                return -1;
            }
            *decoded += used;
            if (st == SY_CHUNK_DONE)
                return 1;
            if (st == SY_CHUNK_ERROR) {
                snprintf(f->detail, sizeof(f->detail), "bad chunked body (%s)",
                         ch->error_reason ? ch->error_reason : "unparsable");
                f->why = f->detail;
                return -1;
            }
            if (st == SY_CHUNK_AGAIN)
                break;
        }
        return 0;
    }
    return -1;
}

/* Reads more bytes into raw: 1 read, 0 end of stream, -1 error in f. */
static int read_more(int fd, struct bytes *raw, int64_t deadline_ms, struct failure *f)
{
    for (;;) {
        ssize_t k;

        if (bytes_reserve(raw, 16384) < 0) {
            f->why = "the answer is larger than 64 MiB";
            return -1;
        }
        k = recv(fd, raw->data + raw->len, raw->cap - raw->len - 1, 0);
        if (k > 0) {
            raw->len += (size_t)k;
            raw->data[raw->len] = '\0';
            return 1;
        }
        if (k == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || wait_fd(fd, POLLIN, deadline_ms) < 0) {
            f->err = errno;
            return -1;
        }
    }
}

/* The answer: its head through the strict parser, then the body by its
 * framing; an interim 1xx answer is skipped. */
static int read_answer(int fd, enum sy_method method, int64_t deadline_ms,
                       struct ctl_response *resp, struct failure *f)
{
    struct sy_header headers[MAX_HEADERS];
    struct sy_http_head head = {.headers = headers};
    const struct sy_parse_limits lim = {MAX_HEAD, MAX_HEAD, MAX_HEADERS};
    struct bytes raw = {0}, body = {0};
    struct sy_chunked ch;
    size_t decoded = 0;
    int head_done = 0, eof = 0, rc = 0;

    sy_http_head_reset(&head);
    while (rc == 0) {
        if (!head_done && raw.len > 0) {
            enum sy_parse_status st = sy_http_parse_response(&head, raw.data, raw.len, &lim,
                                                             method);
            if (st == SY_PARSE_ERROR) {
                snprintf(f->detail, sizeof(f->detail), "the answer is not HTTP (%s)",
                         head.error_reason ? head.error_reason : "unparsable");
                f->why = f->detail;
                rc = -1;
                break;
            }
            if (st == SY_PARSE_DONE && head.status < 200) {
                raw.len -= head.head_len;
                memmove(raw.data, raw.data + head.head_len, raw.len);
                sy_http_head_reset(&head);
                continue;
            }
            if (st == SY_PARSE_DONE) {
                head_done = 1;
                decoded = head.head_len;
                sy_chunked_init(&ch);
            }
        }
        if (head_done && (rc = take_body(&head, &raw, eof, &ch, &decoded, &body, f)) != 0)
            break;
        if (eof) {
            f->why = "the connection closed before the whole answer";
            rc = -1;
        } else if ((rc = read_more(fd, &raw, deadline_ms, f)) >= 0) {
            eof = rc == 0;
            rc = 0;
        }
    }
    free(raw.data);
    if (rc < 0) {
        free(body.data);
        return -1;
    }
    resp->status = head.status;
    resp->len = body.len;
    resp->text = body.data ? body.data : strdup("");
    return resp->text ? 0 : -1;
}

static void report(struct ctl *ctl, const struct failure *f)
{
    const char *why = f->why;
    char timeout[64];

    if (f->err == ETIMEDOUT) {
        snprintf(timeout, sizeof(timeout), "no answer within %d s", CTL_TIMEOUT_S);
        why = timeout;
    } else if (f->err != 0) {
        why = strerror(f->err);
    }
    fprintf(stderr, CTL_NAME ": cannot reach the gateway at %s%s%s%s: %s\n", ctl->url,
            f->addr[0] ? " (" : "", f->addr, f->addr[0] ? ")" : "", why ? why : "failed");
}

int ctl_http(struct ctl *ctl, const char *method, const char *path, json_t *body,
             struct ctl_response *resp)
{
    int64_t deadline_ms = now_ms() + CTL_TIMEOUT_S * 1000;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct bytes req = {0}, uri = {0};
    struct failure f = {.why = NULL};
    int fd = -1, rc = CTL_UNREACHABLE;

    memset(resp, 0, sizeof(*resp));
    if ((body && text == NULL) || bytes_add(&uri, ctl->base_path, strlen(ctl->base_path)) < 0 ||
        bytes_add(&uri, path, strlen(path)) < 0 ||
        format_request(ctl, method, uri.data, text, &req) < 0) {
        f.why = "out of memory";
        goto out;
    }
    if ((fd = connect_host(ctl, deadline_ms, &f)) < 0)
        goto out;
    if (send_all(fd, req.data, req.len, deadline_ms) < 0) {
        f.err = errno;
        goto out;
    }
    if (read_answer(fd, strcmp(method, "GET") == 0 ? SY_METHOD_GET : SY_METHOD_POST,
                    deadline_ms, resp, &f) < 0)
        goto out;
    if (resp->len > 0)
        resp->body = json_loadb(resp->text, resp->len, 0, NULL);
    rc = CTL_OK;
out:
    if (rc != CTL_OK)
        report(ctl, &f);
    if (fd >= 0)
        close(fd);
    if (req.data) {
        explicit_bzero(req.data, req.len);
        free(req.data);
    }
    free(uri.data);
    free(text);
    return rc;
}

void ctl_response_free(struct ctl_response *resp)
{
    json_decref(resp->body);
    free(resp->text);
    memset(resp, 0, sizeof(*resp));
}

static void print_json(const json_t *body)
{
    char *text = json_dumps(body, JSON_INDENT(2) | JSON_ENCODE_ANY);

    if (text)
        printf("%s\n", text);
    free(text);
}

/* The first line of a body that is not JSON, for a message. */
static void first_line(const char *text, char *buf, size_t n)
{
    size_t len = strcspn(text, "\r\n");

    snprintf(buf, n, "%.*s", (int)(len < 200 ? len : 200), text);
}

static int answer(struct ctl *ctl, const struct ctl_response *resp)
{
    const json_t *error = json_object_get(resp->body, "error");
    char line[256];

    if (resp->status >= 200 && resp->status < 300) {
        if (!json_is_object(resp->body)) {
            first_line(resp->text, line, sizeof(line));
            fprintf(stderr, CTL_NAME ": the gateway answered %d without a JSON object: %s\n",
                    resp->status, line[0] ? line : "(empty body)");
            return CTL_REFUSED;
        }
        if (!ctl->json)
            return -1;
        print_json(resp->body);
        return CTL_OK;
    }
    if (ctl->json && resp->body)
        print_json(resp->body);
    if (json_is_string(error)) {
        fprintf(stderr, CTL_NAME ": refused (%d): %s\n", resp->status, json_string_value(error));
    } else {
        first_line(resp->text, line, sizeof(line));
        fprintf(stderr, CTL_NAME ": refused (%d)%s%s\n", resp->status, line[0] ? ": " : "",
                line);
    }
    return CTL_REFUSED;
}

int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t *body,
             struct ctl_response *out)
{
    int rc = ctl_http(ctl, method, path, body, out);

    json_decref(body);
    if (rc != CTL_OK)
        return rc;
    rc = answer(ctl, out);
    if (rc >= 0)
        ctl_response_free(out);
    return rc;
}

int ctl_path_append(char *buf, size_t n, const char *seg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(buf);

    if (len + 1 >= n)
        return -1;
    buf[len++] = '/';
    for (const unsigned char *p = (const unsigned char *)seg; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || strchr("-._~:@", *p) != NULL;

        if (len + (keep ? 1 : 3) >= n)
            return -1;
        if (keep) {
            buf[len++] = (char)*p;
        } else {
            buf[len++] = '%';
            buf[len++] = hex[*p >> 4];
            buf[len++] = hex[*p & 15];
        }
    }
    buf[len] = '\0';
    return 0;
}
