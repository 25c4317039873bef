/* sync/state/figures.c -- the replicated sync figures, "s:sync" (see figures.h). */
#include "sync/state/figures.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/xalloc.h"

bool figures_get(const struct state *s, struct sync_figures *out)
{
	const void *v;
	size_t vlen;
	char err[128];

	memset(out, 0, sizeof *out);
	if (!state_get(s, FIGURES_KEY, strlen(FIGURES_KEY), &v, &vlen))
		return false;
	return figures_decode(v, vlen, out, err, sizeof err) == 0;
}

/* A JSON integer >= 0 into *out; absent leaves *out alone. */
static int take_count(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EPROTO;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int figures_decode(const void *buf, size_t len, struct sync_figures *out, char *errmsg, size_t errlen)
{
	static const char *const counts[] = {"objects", "ops",	  "errors",	    "skipped",
					     "batches", "lag_ms", "last_export_ms", "cursor_at_ms"};
	uint64_t *fields[] = {&out->objects, &out->ops,	   &out->errors,	 &out->skipped,
			      &out->batches, &out->lag_ms, &out->last_export_ms, &out->cursor_at_ms};
	json_error_t jerr;
	json_t *o, *recent, *b;
	size_t i;
	int rv = -EPROTO;

	memset(out, 0, sizeof *out);
	if (len > FIGURES_VALUE_MAX) {
		snprintf(errmsg, errlen, "sync figures: %zu bytes, more than %d", len, FIGURES_VALUE_MAX);
		return -EPROTO;
	}
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		snprintf(errmsg, errlen, "sync figures are not JSON: %s", jerr.text);
		return -EPROTO;
	}
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "v"))) {
		snprintf(errmsg, errlen, "sync figures: no version");
		goto out;
	}
	if (json_integer_value(json_object_get(o, "v")) < 1 ||
	    json_integer_value(json_object_get(o, "v")) > FIGURES_VERSION) {
		snprintf(errmsg, errlen, "sync figures version %lld not understood",
			 (long long)json_integer_value(json_object_get(o, "v")));
		goto out;
	}
	for (i = 0; i < sizeof counts / sizeof counts[0]; i++)
		if (take_count(o, counts[i], fields[i]) != 0) {
			snprintf(errmsg, errlen, "sync figures: \"%s\" is not a count", counts[i]);
			goto out;
		}
	recent = json_object_get(o, "recent");
	if (recent != NULL && !json_is_array(recent)) {
		snprintf(errmsg, errlen, "sync figures: \"recent\" is not a list");
		goto out;
	}
	json_array_foreach(recent, i, b)
	{
		json_t *sec = json_array_get(b, 0), *n = json_array_get(b, 1);
		if (!json_is_array(b) || json_array_size(b) != 2 || !json_is_integer(sec) || !json_is_integer(n) ||
		    json_integer_value(sec) < 0 || json_integer_value(n) < 0) {
			snprintf(errmsg, errlen, "sync figures: \"recent\"[%zu] is not [second, count]", i);
			goto out;
		}
		if (out->n_recent == FIGURES_BUCKETS)
			continue; /* more than we keep: the newest are added last, keep the first */
		out->recent[out->n_recent].second = (uint64_t)json_integer_value(sec);
		out->recent[out->n_recent].objects = (uint64_t)json_integer_value(n);
		out->n_recent++;
	}
	rv = 0;
out:
	json_decref(o);
	if (rv != 0)
		memset(out, 0, sizeof *out);
	return rv;
}

void figures_encode(const struct sync_figures *f, char **buf, size_t *len)
{
	json_t *o, *recent = xcheck(json_array());
	unsigned i;

	for (i = 0; i < f->n_recent; i++)
		if (json_array_append_new(recent, xcheck(json_pack("[I,I]", (json_int_t)f->recent[i].second,
								   (json_int_t)f->recent[i].objects))) != 0)
			xoom("json_array_append_new");
	o = xcheck(json_pack("{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "v", FIGURES_VERSION, "objects",
			     (json_int_t)f->objects, "ops", (json_int_t)f->ops, "errors", (json_int_t)f->errors,
			     "skipped", (json_int_t)f->skipped, "batches", (json_int_t)f->batches, "lag_ms",
			     (json_int_t)f->lag_ms, "last_export_ms", (json_int_t)f->last_export_ms,
			     "cursor_at_ms", (json_int_t)f->cursor_at_ms, "recent", recent));
	/* sorted keys: the same figures are the same bytes (state digest) */
	*buf = xcheck(json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS));
	*len = strlen(*buf);
	json_decref(o);
}

void figures_put(struct state_batch *b, const struct sync_figures *f)
{
	char *val;
	size_t vlen;

	figures_encode(f, &val, &vlen);
	state_batch_put(b, FIGURES_KEY, strlen(FIGURES_KEY), val, vlen);
	free(val);
}

void figures_add(struct sync_figures *f, uint64_t now_ms, uint64_t objects, uint64_t ops, uint64_t errors,
		 bool cursor_moved)
{
	uint64_t second = now_ms / 1000 / FIGURES_BUCKET_S * FIGURES_BUCKET_S;
	unsigned i, kept = 0;

	f->objects += objects;
	f->ops += ops;
	f->errors += errors;
	f->batches++;
	if (objects > 0 || ops > 0)
		f->last_export_ms = now_ms;
	if (cursor_moved)
		f->cursor_at_ms = now_ms;
	/* Drop the buckets that left the window (and any "ahead" of this
	 * clock by more than one bucket: a leader whose clock was ahead). */
	for (i = 0; i < f->n_recent; i++)
		if (f->recent[i].second + FIGURES_RATE_WINDOW_S > second &&
		    f->recent[i].second <= second + FIGURES_BUCKET_S)
			f->recent[kept++] = f->recent[i];
	f->n_recent = kept;
	/* unused slots zero: equal figures compare equal */
	memset(&f->recent[kept], 0, (FIGURES_BUCKETS - kept) * sizeof f->recent[0]);
	if (objects == 0)
		return;
	for (i = 0; i < f->n_recent; i++)
		if (f->recent[i].second == second) {
			f->recent[i].objects += objects;
			return;
		}
	if (f->n_recent == FIGURES_BUCKETS) { /* full: drop the oldest */
		memmove(&f->recent[0], &f->recent[1], (FIGURES_BUCKETS - 1) * sizeof f->recent[0]);
		f->n_recent--;
	}
	f->recent[f->n_recent].second = second;
	f->recent[f->n_recent].objects = objects;
	f->n_recent++;
}

double figures_rate(const struct sync_figures *f, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000, n = 0;
	unsigned i;

	for (i = 0; i < f->n_recent; i++)
		if (f->recent[i].second + FIGURES_RATE_WINDOW_S > now_s && f->recent[i].second <= now_s)
			n += f->recent[i].objects;
	return (double)n / FIGURES_RATE_WINDOW_S;
}
