/* sync/state/cluster.c -- the cluster id key (see cluster.h). */
#include "sync/state/cluster.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

bool cluster_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || strlen(id) != CLUSTER_ID_HEX)
		return false;
	for (i = 0; i < CLUSTER_ID_HEX; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

const char *cluster_id_get(const struct state *s)
{
	const void *v;
	size_t vlen;

	if (!state_get(s, CLUSTER_ID_KEY, strlen(CLUSTER_ID_KEY), &v, &vlen))
		return NULL;
	/* Written with its NUL by cluster_id_put; anything else is not ours. */
	if (vlen != CLUSTER_ID_HEX + 1 || ((const char *)v)[CLUSTER_ID_HEX] != '\0')
		return NULL;
	return v;
}

void cluster_id_put(struct state_batch *b, const char *id)
{
	state_batch_put(b, CLUSTER_ID_KEY, strlen(CLUSTER_ID_KEY), id, CLUSTER_ID_HEX + 1);
}

int cluster_id_generate(char *out, char *errmsg, size_t errlen)
{
	unsigned char raw[CLUSTER_ID_HEX / 2];
	size_t i;

	if (RAND_bytes(raw, sizeof raw) != 1) {
		const char *why = ERR_reason_error_string(ERR_get_error());
		snprintf(errmsg, errlen, "cluster id: no random bytes from OpenSSL: %s",
			 why ? why : "unknown error");
		return -EIO;
	}
	for (i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}
