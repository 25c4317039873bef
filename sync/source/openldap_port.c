/*
 * sync/source/openldap_port.c -- the OpenLDAP source behind the source port
 * (source.h): each run is one ldap_source (openldap.h), and what its
 * SOURCE_STATUS events said is kept for status().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/source/openldap.h"

struct openldap_run {
	struct ldap_source *ls;
	source_event_cb cb;
	void *data;
	struct source_status status;
	void (*done)(void *data);
	void *done_data;
};

static struct openldap_run *run_of(struct source_run *run)
{
	return (struct openldap_run *)run;
}

static void on_event(void *data, struct source_event *ev)
{
	struct openldap_run *r = data;

	if (ev->kind == SOURCE_STATUS) {
		r->status.reported = true;
		r->status.connected = ev->connected;
		r->status.problem = ev->problem;
		snprintf(r->status.message, sizeof r->status.message, "%s", ev->message ? ev->message : "");
	}
	r->cb(r->data, ev); /* may stop the run: r lives until on_stopped */
}

static int p_start(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		   const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data, struct source_run **out,
		   char *errmsg, size_t errlen)
{
	struct ldap_source_config cfg = *(const struct ldap_source_config *)src->impl;
	struct openldap_run *r = xcalloc(1, sizeof *r);
	int rv;

	cfg.attrs = attrs;
	cfg.n_attrs = n_attrs;
	r->cb = cb;
	r->data = data;
	rv = ldap_source_start(&r->ls, loop, &cfg, cursor, cursor_len, on_event, r, errmsg, errlen);
	if (rv != 0) {
		free(r);
		*out = NULL;
		return rv;
	}
	*out = (struct source_run *)r;
	return 0;
}

static void p_refresh(struct source_run *run, enum object_type type)
{
	ldap_source_refresh(run_of(run)->ls, type);
}

static void p_pause(struct source_run *run)
{
	ldap_source_pause(run_of(run)->ls);
}

static void p_resume(struct source_run *run)
{
	ldap_source_resume(run_of(run)->ls);
}

static void p_status(struct source_run *run, struct source_status *out)
{
	struct openldap_run *r = run_of(run);

	*out = r->status;
	out->queue_peak = ldap_source_queue_peak(r->ls);
}

static void on_stopped(void *data)
{
	struct openldap_run *r = data;
	void (*done)(void *) = r->done;
	void *done_data = r->done_data;

	free(r);
	if (done != NULL)
		done(done_data);
}

static void p_stop(struct source_run *run, void (*done)(void *data), void *data)
{
	struct openldap_run *r = run_of(run);

	r->done = done;
	r->done_data = data;
	ldap_source_stop(r->ls, on_stopped, r);
}

static void p_close(struct source *src)
{
	free(src->impl);
	free(src);
}

struct source *openldap_source_new(const struct ldap_source_config *cfg)
{
	struct source *src = xcalloc(1, sizeof *src);
	struct ldap_source_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	src->impl = copy;
	src->name = "openldap";
	src->start = p_start;
	src->refresh = p_refresh;
	src->pause = p_pause;
	src->resume = p_resume;
	src->status = p_status;
	src->stop = p_stop;
	src->close = p_close;
	return src;
}
