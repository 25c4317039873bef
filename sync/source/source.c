/*
 * sync/source/source.c -- the parts of the source vocabulary that every
 * source shares: freeing events and naming problems.
 */
#include <stdlib.h>

#include "sync/object.h"
#include "sync/source/source.h"

static void attr_free(struct object_attr *a)
{
	for (size_t i = 0; i < a->n_values; i++)
		free(a->values[i]);
	free(a->values);
	free(a->name);
}

void source_event_free(struct source_event *ev)
{
	if (ev == NULL)
		return;
	for (size_t i = 0; i < ev->n_attrs; i++)
		attr_free(&ev->attrs[i]);
	free(ev->attrs);
	free(ev->anchor);
	free(ev->dn);
	free(ev->cursor);
	free(ev->message);
	free(ev);
}

const char *source_problem_name(enum source_problem p)
{
	switch (p) {
	case SOURCE_PROBLEM_NONE:
		return "none";
	case SOURCE_UNREACHABLE:
		return "source_unreachable";
	case SOURCE_UNAUTHORIZED:
		return "source_unauthorized";
	case SOURCE_FAILING:
		return "source_error";
	}
	return "source_error";
}
