/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyhash.c: SipHash-c-d over byte strings, after the reference
 * implementation (github.com/veorq/SipHash): 8-byte little-endian words,
 * the last word holding the tail bytes and the length mod 256 in its top
 * byte. One body serves both variants; the round counts are constants, so
 * the compiler unrolls each.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "keyhash.h"

#define ROTL(x, b)  (((x) << (b)) | ((x) >> (64 - (b))))

struct sip {
    uint64_t v0, v1, v2, v3;
};

static inline uint64_t
load_le64(const unsigned char *p)
{
    uint64_t x;

    memcpy(&x, p, sizeof(x));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

static inline uint64_t
load_le32(const unsigned char *p)
{
    uint32_t x;

    memcpy(&x, p, sizeof(x));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap32(x);
#endif
    return x;
}

/* The n < 8 bytes at p as the low bytes of a little-endian word. */
static inline uint64_t
load_tail(const unsigned char *p, size_t n)
{
    uint64_t x = 0;

    if (n >= 4)             /* two overlapping loads; the shared bytes agree */
        return load_le32(p) | load_le32(p + n - 4) << (8 * (n - 4));
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static inline void
sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline void
sip_init(struct sip *s, const struct sy_sipkey *k)
{
    s->v0 = k->k0 ^ 0x736f6d6570736575ull;     /* "somepseudorandomlygeneratedbytes" */
    s->v1 = k->k1 ^ 0x646f72616e646f6dull;
    s->v2 = k->k0 ^ 0x6c7967656e657261ull;
    s->v3 = k->k1 ^ 0x7465646279746573ull;
}

static inline void
sip_word(struct sip *s, uint64_t m, int c_rounds)
{
    s->v3 ^= m;
    for (int i = 0; i < c_rounds; i++)
        sip_round(s);
    s->v0 ^= m;
}

/* The last word (tail bytes and length), then the finalization. */
static inline uint64_t
sip_last(struct sip *s, uint64_t m, int c_rounds, int d_rounds)
{
    sip_word(s, m, c_rounds);
    s->v2 ^= 0xff;
    for (int i = 0; i < d_rounds; i++)
        sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/*
 * The rest of a message: data[0..len) are its last bytes and total its
 * whole length (the caller may have fed a first word itself). Returns the
 * hash.
 */
static inline uint64_t
sip_finish(struct sip *s, const unsigned char *data, size_t len, uint64_t total,
           int c_rounds, int d_rounds)
{
    size_t i = 0;

    for (; len - i >= 8; i += 8)
        sip_word(s, load_le64(data + i), c_rounds);
    /* data may be NULL when len is 0: no arithmetic on it then */
    return sip_last(s, total << 56 | (len > i ? load_tail(data + i, len - i) : 0),
                    c_rounds, d_rounds);
}

uint64_t
sy_siphash13(const struct sy_sipkey *k, const void *data, size_t len)
{
    struct sip s;

    sip_init(&s, k);
    return sip_finish(&s, data, len, len, 1, 3);
}

uint64_t
sy_siphash24(const struct sy_sipkey *k, const void *data, size_t len)
{
    struct sip s;

    sip_init(&s, k);
    return sip_finish(&s, data, len, len, 2, 4);
}

uint64_t
sy_siphash13_u32(const struct sy_sipkey *k, uint32_t prefix, const void *data, size_t len)
{
    const unsigned char *p = data;
    struct sip s;

    sip_init(&s, k);
    if (len < 4)        /* prefix and data fit in the last word */
        return sip_last(&s, (uint64_t)(len + 4) << 56 | load_tail(p, len) << 32 | prefix,
                        1, 3);
    sip_word(&s, (uint64_t)prefix | load_le32(p) << 32, 1);
    return sip_finish(&s, p + 4, len - 4, len + 4, 1, 3);
}

int
sy_sipkey_random(struct sy_sipkey *k)
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    k->k0 = load_le64(b);
    k->k1 = load_le64(b + 8);
    return 0;
}
