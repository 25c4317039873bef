/*
 * tests/fuzz/fuzz_status_views.c -- what status reads from elsewhere: the
 * replicated sync figures ("s:sync", figures_decode: any bytes a leader
 * committed) and the leader's member view a follower fetches
 * (member_view_parse: any answer at the leader's control address, with the
 * leader's clock in its "health", health_view_parse), and a follower's
 * health report's "checked_after" as the leader reads it. They return 0 or
 * -EPROTO; decoded figures encode and decode to the same.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/health_pick.h"
#include "agent/member_view.h"
#include "sync/state/figures.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_figures f, g;
	uint64_t leader, term;
	json_t *members, *health, *o;
	uint64_t leader_ms, failing_since;
	char err[256], *buf;
	size_t len;
	int rc;

	rc = figures_decode(data, size, &f, err, sizeof err);
	assert(rc == 0 || rc == -EPROTO);
	if (rc == 0) {
		figures_encode(&f, &buf, &len);
		assert(figures_decode(buf, len, &g, err, sizeof err) == 0);
		assert(memcmp(&f.objects, &g.objects, sizeof f.objects) == 0 && f.n_recent == g.n_recent);
		free(buf);
		(void)figures_rate(&f, UINT64_MAX / 2);
		figures_add(&f, 1796013312000ULL, 1, 1, 1, true);
	}
	rc = member_view_parse((const char *)data, size, &leader, &term, &members, &health, err, sizeof err);
	assert(rc == 0 || rc == -EPROTO);
	if (rc == 0) {
		assert(leader > 0 && json_is_array(members));
		assert(health == NULL || json_is_object(health));
		/* what a follower takes from it (agent/health_pick.h) */
		if (health_view_parse(health, &leader_ms, &failing_since) == 0)
			assert(leader_ms > 0);
		json_decref(members);
		json_decref(health);
	}
	/* a follower's health report, as the leader reads its "checked_after" */
	o = json_loadb((const char *)data, size, 0, NULL);
	if (o != NULL) {
		(void)health_checked_after(json_object_get(o, "checked_after"), 1, 1, UINT64_MAX / 2);
		json_decref(o);
	}
	return 0;
}
