/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench_parser.c: nanoseconds per parse of a typical ~400-byte browser
 * request head (whole buffer, and arriving in two reads), and per
 * chunked-body decode. Build with optimisation; optional argument: millions
 * of parses (default 5). Prints one line per measurement.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/parser.h"
#include "bench_util.h"

static const char request[] =
    "GET /products/item.html?id=1234&ref=home HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://shop.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=4f2a9c1e7b; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "\r\n";

static const char chunked[] = "400\r\n" "%1024s" "\r\n" "0\r\n\r\n";

static volatile size_t sink;

static void
bench_request(unsigned long n, size_t first_read)
{
    static const struct sy_parse_limits lim = { 16384, 8192, 100 };
    struct sy_header headers[100];
    struct sy_http_head h = { .headers = headers };
    double start = now_ns();

    for (unsigned long i = 0; i < n; i++) {
        sy_http_head_reset(&h);
        if (first_read)
            sy_http_parse_request(&h, request, first_read, &lim);
        if (sy_http_parse_request(&h, request, sizeof(request) - 1, &lim) != SY_PARSE_DONE)
            abort();
        sink += h.nheaders;
    }
    printf("request head, %zu bytes, %s %6.1f ns/parse\n", sizeof(request) - 1,
           first_read ? "two reads: " : "one read:  ", (now_ns() - start) / (double)n);
}

static void
bench_chunked(unsigned long n)
{
    char body[1100];
    int len = snprintf(body, sizeof(body), chunked, "");
    struct sy_chunked c;
    double start = now_ns();

    for (unsigned long i = 0; i < n; i++) {
        size_t pos = 0, used, off, dl;
        enum sy_chunk_status st;
        sy_chunked_init(&c);
        do {
            st = sy_chunked_decode(&c, body + pos, (size_t)len - pos, &used, &off, &dl);
            pos += used;
        } while (st == SY_CHUNK_DATA);
        if (st != SY_CHUNK_DONE)
            abort();
        sink += c.total;
    }
    printf("chunked body, 1 KiB in one chunk:     %6.1f ns/decode\n", (now_ns() - start) / (double)n);
}

int
main(int argc, char **argv)
{
    unsigned long n = 1000000ul * (argc > 1 ? strtoul(argv[1], NULL, 10) : 5);

    if (n == 0)
        n = 1000000ul;
    bench_request(n, 0);
    bench_request(n, 200);
    bench_chunked(n);
    return 0;
}
