/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * keyhash.h: SipHash (Aumasson and Bernstein, 2012), the keyed hash for
 * tables whose keys come from clients (rate-limit keys: addresses, header
 * values). With a secret random key a client cannot compute which keys
 * collide, so it cannot aim many keys at one bucket; an unkeyed hash
 * (FNV-1a) would let it. SipHash-1-3 for the tables (the variant Python and
 * Rust use for theirs), SipHash-2-4 as the reference the tests check first.
 */
#ifndef SY_KEYHASH_H
#define SY_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 128-bit key: k0 is bytes 0..7 of the reference's key, little-endian. */
struct sy_sipkey {
    uint64_t k0, k1;
};

/* Fills k from getrandom(). 0, or -1 with errno set (no kernel support). */
int sy_sipkey_random(struct sy_sipkey *k);

uint64_t sy_siphash13(const struct sy_sipkey *k, const void *data, size_t len);
uint64_t sy_siphash24(const struct sy_sipkey *k, const void *data, size_t len);

/* SipHash-1-3 of the 4 bytes of prefix (little-endian) followed by data,
 * without copying them into one buffer: a table id and its key. */
uint64_t sy_siphash13_u32(const struct sy_sipkey *k, uint32_t prefix, const void *data,
                          size_t len);

#endif
