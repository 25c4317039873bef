/*
 * tests/fuzz/fuzz_fsm.c -- the replicated state's decoders: an FSM entry
 * (raft/fsm.c framing, then sync/state/state.c's batch apply) or a snapshot
 * restore, then the records a state holds (object, retry and version
 * records; a batch may be format 2: deflated).
 * Input: byte 0 picks what the rest is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "raft/fsm.h"
#include "sync/state/format.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/state/state.h"

/* object_record_target_id() on what object_record_encode() writes must give
 * the record's own target id. */
static void same_target_id(const struct object_record *o)
{
	char *buf, *id;
	size_t len;
	int rv;

	object_record_encode(o, &buf, &len);
	rv = object_record_target_id(buf, len, &id);
	if (rv < 0 || (rv == 1) != (o->target_id != NULL) ||
	    (rv == 1 && strcmp(id, o->target_id) != 0))
		abort();
	free(id);
	free(buf);
}

static int each(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct object_record o;
	struct retry_record r;
	struct format_record v;
	char err[128];
	(void)ctx;
	(void)key;
	(void)klen;
	if (object_record_decode(val, vlen, &o, err, sizeof err) == 0) {
		same_target_id(&o);
		object_record_free(&o);
	}
	if (retry_record_decode(val, vlen, &r, err, sizeof err) == 0)
		retry_record_free(&r);
	(void)format_record_parse(val, vlen, &v, err, sizeof err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state s;
	struct fsm_machine *m;
	struct raft_buffer buf;
	const void *payload;
	size_t len;
	uint16_t type, version;
	void *result = NULL, *snap = NULL;
	char err[256];

	if (size < 1)
		return 0;
	{
		/* the bytes as one record: the fast target-id reader on anything,
		 * and the property above when it decodes */
		struct object_record o;
		char *id = NULL, *rec = malloc(size);
		if (rec == NULL)
			return 0;
		memcpy(rec, data, size);
		(void)object_record_target_id(rec, size, &id);
		free(id);
		if (object_record_decode(rec, size, &o, err, sizeof err) == 0) {
			same_target_id(&o);
			object_record_free(&o);
		}
		free(rec);
	}
	state_init(&s);
	m = state_machine(&s);
	/* a copy of exactly `size` bytes, so reads past it are caught */
	buf.len = size - 1;
	buf.base = malloc(buf.len ? buf.len : 1);
	if (buf.base == NULL)
		goto out;
	memcpy(buf.base, data + 1, buf.len);
	switch (data[0] % 4) {
	case 0: /* an entry, framed */
		if (fsm_decode(&buf, m->max_version, &type, &version, &payload, &len) == 0)
			m->apply(m->data, type, version, payload, len, &result, err, sizeof err);
		break;
	case 1: /* an entry's payload, unframed */
		m->apply(m->data, STATE_ENTRY_BATCH, STATE_VERSION, buf.base, buf.len, &result, err, sizeof err);
		break;
	case 2: /* a snapshot */
		m->restore(m->data, STATE_VERSION, buf.base, buf.len, err, sizeof err);
		break;
	default: /* a snapshot, framed like an entry */
		if (fsm_decode(&buf, m->max_version, &type, &version, &payload, &len) == 0)
			m->restore(m->data, version, payload, len, err, sizeof err);
		break;
	}
	state_foreach(&s, each, NULL);
	/* whatever was accepted must round-trip */
	m->snapshot(m->data, &snap, &len);
	if (m->restore(m->data, STATE_VERSION, snap, len, err, sizeof err) != 0)
		abort();
	free(snap);
	free(buf.base);
out:
	free(result);
	state_close(&s);
	return 0;
}
