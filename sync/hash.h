/*
 * sync/hash.h -- FNV-1a, 64 bit: the one hash canopy uses for its tables,
 * digests and content hashes. Deterministic on every node and platform,
 * which the replicated digest needs; not for adversarial input.
 */
#ifndef CANOPY_SYNC_HASH_H
#define CANOPY_SYNC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED 0xcbf29ce484222325ULL

/* Continue hash `h` (start with HASH_SEED) over n bytes. */
static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	while (n--) {
		h ^= *c++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Hash of a NUL-terminated string. */
static inline uint64_t hash_str(const char *s)
{
	uint64_t h = HASH_SEED;
	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#endif /* CANOPY_SYNC_HASH_H */
