/* sync/strmap.c -- see strmap.h. */
#include "sync/strmap.h"
#include "common/xalloc.h"
#include "sync/hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_entry {
	struct strmap_entry *next;
	uint64_t hash;
	void *value;
	char key[];
};

static uint64_t hash(const char *s)
{
	return hash_str(s);
}

void strmap_init(struct strmap *m, void (*free_value)(void *value))
{
	memset(m, 0, sizeof *m);
	m->free_value = free_value;
}

void strmap_clear(struct strmap *m)
{
	size_t i;
	for (i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (m->free_value)
				m->free_value(e->value);
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = m->count = 0;
}

static struct strmap_entry **find(const struct strmap *m, const char *key, uint64_t h)
{
	struct strmap_entry **p = &m->buckets[h & (m->n_buckets - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
			break;
	return p;
}

static void grow(struct strmap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 64, i;
	struct strmap_entry **b = xcalloc(n, sizeof *b);
	for (i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
	uint64_t h = hash(key);
	struct strmap_entry **p, *e;
	size_t len = strlen(key);

	if (m->count >= m->n_buckets)
		grow(m);
	p = find(m, key, h);
	if (*p) {
		if (m->free_value && (*p)->value != value)
			m->free_value((*p)->value);
		(*p)->value = value;
		return 0;
	}
	e = xmalloc(sizeof *e + len + 1);
	e->next = NULL;
	e->hash = h;
	e->value = value;
	memcpy(e->key, key, len + 1);
	*p = e;
	m->count++;
	return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry *e;
	if (m->n_buckets == 0)
		return NULL;
	e = *find(m, key, hash(key));
	return e ? e->value : NULL;
}

int strmap_has(const struct strmap *m, const char *key)
{
	return m->n_buckets != 0 && *find(m, key, hash(key)) != NULL;
}

void strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **p, *e;
	if (m->n_buckets == 0)
		return;
	p = find(m, key, hash(key));
	if ((e = *p) == NULL)
		return;
	*p = e->next;
	if (m->free_value)
		m->free_value(e->value);
	free(e);
	m->count--;
}

int strmap_foreach(const struct strmap *m, int (*cb)(void *ctx, const char *key, void *value),
		   void *ctx)
{
	size_t i;
	int rv;
	for (i = 0; i < m->n_buckets; i++) {
		struct strmap_entry *e = m->buckets[i];
		for (; e; e = e->next)
			if ((rv = cb(ctx, e->key, e->value)) != 0)
				return rv;
	}
	return 0;
}
