/*
 * agent/versions.c -- versions advertised per member and the format the
 * leader writes (see versions.h).
 */
#include "agent/versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canopy_commit.h> /* CANOPY_COMMIT, generated in the build tree (cmake/git_commit.cmake) */

#include "agent/agent.h"
#include "agent/log.h"
#include "common/xalloc.h"
#include "sync/state/format.h"
#include "sync/text_json.h"

const char *versions_text(void)
{
	return "canopy-agent " CANOPY_VERSION " (commit " CANOPY_COMMIT ")";
}

bool versions_text_ok(const char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			return false;
	return true;
}

static void set(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) != 0)
		xoom("json_object_set_new");
}

static void on_recorded(void *arg, int status)
{
	struct agent *a = arg;

	a->versions.in_flight = false;
	if (status != 0)
		log_debug("member versions not recorded; tried again", "status=%d", status);
}

/* "1:2 2:1 3:2": each member's id and newest format, for the log. */
static void members_line(struct agent *a, const struct node_status *st, char *out, size_t len)
{
	size_t n = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < st->n_members && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%llu:%u", i ? " " : "",
				      (unsigned long long)st->members[i].id,
				      (unsigned)format_member_max(&a->state, st->members[i].id));
}

struct prune {
	const struct node_status *st;
	struct state_batch *b;
};

static int prune_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct prune *p = ctx;
	char id[24];
	unsigned long long n;
	char *end;
	unsigned i;

	(void)val;
	(void)vlen;
	if (klen < 3 || klen - 2 >= sizeof id || ((const char *)key)[0] != FORMAT_KEY_PREFIX ||
	    ((const char *)key)[1] != ':')
		return 0;
	memcpy(id, (const char *)key + 2, klen - 2);
	id[klen - 2] = '\0';
	n = strtoull(id, &end, 10);
	for (i = 0; i < p->st->n_members; i++)
		if (*end == '\0' && p->st->members[i].id == n)
			return 0;
	state_batch_del(p->b, key, klen);
	return 0;
}

/* An order-independent digest of the member ids (never 0). */
static uint64_t members_digest(const struct node_status *st)
{
	uint64_t d = 0x9e3779b97f4a7c15ULL;
	unsigned i;

	for (i = 0; i < st->n_members; i++)
		d ^= (st->members[i].id + 1) * 0xff51afd7ed558ccdULL;
	return d ? d : 1;
}

/*
 * Leader: record what differs from the state -- its own build, and each
 * member's latest report -- in one entry at a time; and log when the format
 * it writes changes.
 */
static void on_tick(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct versions *v = &a->versions;
	struct node_status st;
	struct format_record rec;
	struct state_batch b;
	struct raft_buffer buf;
	uint64_t ids[NODE_MAX_MEMBERS];
	char line[NODE_MAX_MEMBERS * 24];
	uint16_t f;
	unsigned i;

	if (a->stopping)
		return;
	node_status(&a->node, &st);
	if (st.state != NODE_LEADER || !st.ready) {
		v->writing = 0;
		v->members_seen = 0;
		return;
	}
	if (!v->in_flight) {
		state_batch_init(&b);
		/* a scan of the whole table, so only when the members changed
		 * (and once per leadership) */
		bool pruning = members_digest(&st) != v->members_seen;
		if (pruning) {
			struct prune p = {&st, &b};
			state_foreach(&a->state, prune_one, &p);
		}
		for (i = 0; i < st.n_members; i++) {
			uint64_t id = st.members[i].id;
			if (id == a->cfg.node.id) {
				rec.max_format = STATE_VERSION;
				snprintf(rec.text, sizeof rec.text, "%s", versions_text());
			} else {
				int r = a->health ? health_peer_version(a->health, id, &rec) : -1;
				if (r < 0)
					continue; /* no report yet: the record stays as it is */
				if (r == 0) {
					/* an older build reports no version: no record,
					 * which counts as format 1 (a member put back on an
					 * older build loses the newer one it had) */
					char key[32];
					size_t klen = format_key(id, key, sizeof key);
					const void *val;
					size_t vlen;
					if (state_get(&a->state, key, klen, &val, &vlen))
						state_batch_del(&b, key, klen);
					continue;
				}
			}
			if (!format_record_equal(&a->state, id, &rec))
				format_record_put(&b, id, &rec);
		}
		/* format 1: every member applies it, whatever it runs */
		if (b.n_ops > 0 && state_batch_encode(&b, &buf) == 0) {
			if (node_apply(&a->node, &buf, on_recorded, a) == 0)
				v->in_flight = true;
			else
				raft_free(buf.base);
		}
		if (pruning && (b.n_ops == 0 || v->in_flight))
			v->members_seen = members_digest(&st);
		state_batch_close(&b);
	}
	for (i = 0; i < st.n_members; i++)
		ids[i] = st.members[i].id;
	f = state_format_writable(&a->state, ids, st.n_members, STATE_VERSION);
	if (f != v->writing) {
		members_line(a, &st, line, sizeof line);
		if (v->writing == 0)
			log_info("writing entries in format", "format=%u max_format=%u members=\"%s\"",
				 (unsigned)f, (unsigned)STATE_VERSION, line);
		else
			log_info("entry format changed: every member supports it", "format=%u previous=%u members=\"%s\"",
				 (unsigned)f, (unsigned)v->writing, line);
		v->writing = f;
	}
}

void versions_start(struct agent *a)
{
	struct versions *v = &a->versions;

	memset(v, 0, sizeof *v);
	uv_timer_init(&a->loop, &v->tick);
	v->tick.data = a;
	uv_timer_start(&v->tick, on_tick, VERSIONS_TICK_MS, VERSIONS_TICK_MS);
	v->started = true;
}

void versions_close(struct agent *a)
{
	if (!a->versions.started)
		return;
	a->versions.started = false;
	uv_close((uv_handle_t *)&a->versions.tick, NULL);
}

json_t *versions_json(void)
{
	return xcheck(json_pack("{s:s,s:s,s:s,s:i}", "text", versions_text(), "version", CANOPY_VERSION,
				"commit", CANOPY_COMMIT, "max_format", STATE_VERSION));
}

json_t *versions_format_json(struct agent *a)
{
	struct node_status st;
	uint64_t ids[NODE_MAX_MEMBERS];
	json_t *o, *by;
	unsigned i;
	char k[8];

	node_status(&a->node, &st);
	for (i = 0; i < st.n_members; i++)
		ids[i] = st.members[i].id;
	by = xcheck(json_object());
	for (i = 1; i <= STATE_VERSION; i++) {
		snprintf(k, sizeof k, "%u", i);
		set(by, k, xcheck(json_integer((json_int_t)a->state.applied_by_version[i])));
	}
	/* "supported": what the replicated records allow, on every node;
	 * "writing": what this node writes, on a ready leader only */
	o = xcheck(json_pack("{s:i,s:o,s:o,s:I}", "supported",
			     (int)state_format_writable(&a->state, ids, st.n_members, STATE_VERSION), "writing",
			     st.state == NODE_LEADER && st.ready
				     ? xcheck(json_integer(state_format_writable(&a->state, ids, st.n_members,
										  STATE_VERSION)))
				     : json_null(),
			     "applied_by_version", by, "applied_deflated", (json_int_t)a->state.applied_deflated));
	set(o, "records", xcheck(json_integer((json_int_t)state_count(&a->state, STATE_NS_VERSION))));
	return o;
}

void versions_member_json(struct agent *a, uint64_t id, json_t *m)
{
	struct format_record rec;

	if (format_record_get(&a->state, id, &rec)) {
		set(m, "version", text_json(rec.text)); /* from the state: any bytes */
		set(m, "max_format", xcheck(json_integer(rec.max_format)));
	} else {
		set(m, "version", json_null());
		set(m, "max_format", xcheck(json_integer(1)));
	}
}
