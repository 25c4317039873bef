/*
 * raft/isolation.c -- cut one server off from every raft message (see isolation.h).
 */
#include "raft/isolation.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct isolation_send {
	struct raft_io_send *req;
	raft_io_send_cb cb;
	int status;
	struct isolation_send *next;
};

/*
 * The wrappers are called with the io alone, and io->data is libraft's (it
 * points at the struct raft). An agent has one io, a unit test a few: a
 * short table from io to isolation, used on the loop thread only.
 */
#define ISOLATION_MAX 16
static struct raft_io *wrapped_io[ISOLATION_MAX];
static struct isolation *wrapped_iso[ISOLATION_MAX];

static struct isolation *find(struct raft_io *io)
{
	unsigned i;
	for (i = 0; i < ISOLATION_MAX; i++)
		if (wrapped_io[i] == io)
			return wrapped_iso[i];
	assert(0 && "raft_io not wrapped"); /* only wrapped ios get these operations */
	abort();
}

/* Free what a received message owns, as libraft does for a message it does
 * not process (src/recv.c, recvCb while RAFT_UNAVAILABLE; src/entry.c,
 * entryBatchesDestroy: consecutive entries share one batch). */
static void drop_message(struct raft_message *m)
{
	struct raft_append_entries *ae;
	void *batch = NULL;
	unsigned i;

	switch (m->type) {
	case RAFT_IO_APPEND_ENTRIES:
		ae = &m->append_entries;
		if (ae->entries == NULL)
			break;
		for (i = 0; i < ae->n_entries; i++) {
			if (ae->entries[i].batch != batch) {
				batch = ae->entries[i].batch;
				raft_free(batch);
			}
		}
		raft_free(ae->entries);
		break;
	case RAFT_IO_INSTALL_SNAPSHOT:
		raft_configuration_close(&m->install_snapshot.conf);
		raft_free(m->install_snapshot.data.base);
		break;
	default:
		break; /* the other messages own no memory */
	}
}

/* Note that `id` talked now: its slot, a free one, or the one heard from
 * longest ago (more servers than slots: one that talks again gets a slot). */
static void note_heard(struct isolation *iso, uint64_t id, raft_time now)
{
	unsigned i, oldest = 0;

	if (id == 0)
		return;
	for (i = 0; i < ISOLATION_HEARD_MAX; i++) {
		if (iso->heard[i].id == id || iso->heard[i].id == 0)
			break;
		if (iso->heard[i].at < iso->heard[oldest].at)
			oldest = i;
	}
	if (i == ISOLATION_HEARD_MAX)
		i = oldest;
	iso->heard[i].id = id;
	iso->heard[i].at = now;
}

raft_time isolation_heard_at(const struct isolation *iso, uint64_t id)
{
	unsigned i;

	for (i = 0; i < ISOLATION_HEARD_MAX && iso->heard[i].id != 0; i++)
		if (iso->heard[i].id == id)
			return iso->heard[i].at;
	return 0;
}

static void on_recv(struct raft_io *io, struct raft_message *m)
{
	struct isolation *iso = find(io);

	if (iso->on) {
		iso->dropped_in++;
		drop_message(m);
		return;
	}
	if (io->time != NULL) /* every real io has a clock; a test's fake may not */
		note_heard(iso, m->server_id, io->time(io));
	acks_received(&iso->acks, m);
	iso->recv(io, m);
}

static int on_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
	struct isolation *iso = find(io);

	iso->recv = recv;
	return iso->start(io, msecs, tick, on_recv);
}

/* Run the callbacks of the dropped sends queued so far, with their status
 * (`status` instead when non-zero: closing). A callback may send again
 * (libraft retries from its callbacks); those wait for the next run. */
static void complete(struct isolation *iso, int status)
{
	struct isolation_send *s = iso->pending;

	iso->pending = NULL;
	iso->pending_tail = &iso->pending;
	while (s != NULL) {
		struct isolation_send *next = s->next;
		struct raft_io_send *req = s->req;
		raft_io_send_cb cb = s->cb;
		int st = status ? status : s->status;
		free(s);
		req->cb = cb;
		cb(req, st);
		s = next;
	}
}

static void on_timer(uv_timer_t *t)
{
	complete(t->data, 0);
}

/* Accepted, not sent: libraft expects the callback later, never from inside
 * its own call (src/replication.c frees the request there). */
static void drop_send(struct isolation *iso, struct raft_io_send *req, raft_io_send_cb cb, int status)
{
	struct isolation_send *s = xcalloc(1, sizeof *s);

	s->req = req;
	s->cb = cb;
	s->status = status;
	*iso->pending_tail = s;
	iso->pending_tail = &s->next;
	uv_timer_start(&iso->timer, on_timer, 0, 0);
}

static int on_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
		   raft_io_send_cb cb)
{
	struct isolation *iso = find(io);

	/* libraft 0.15 can address a message to no one: a follower whose
	 * append completes after it was a candidate and turned follower again
	 * without hearing from a leader answers to current_leader.address,
	 * NULL then (src/replication.c appendFollowerCb -> sendAppendEntriesResult),
	 * and raft_uv copies that address with strlen (src/uv_send.c
	 * uvClientInit): a crash. Elections in quick succession (the crash
	 * drill, early elections) made it happen. Nobody is there to answer:
	 * undeliverable, as raft_uv reports a peer it cannot reach. */
	if (message->server_address == NULL) {
		iso->unaddressed++;
		if (iso->closed)
			return RAFT_NOCONNECTION; /* raft is closing: no timer any more */
		drop_send(iso, req, cb, RAFT_NOCONNECTION);
		return 0;
	}
	if (io->time != NULL)
		acks_sent(&iso->acks, message, io->time(io));
	if (!iso->on || iso->closed)
		return iso->send(io, req, message, cb);
	iso->dropped_out++;
	drop_send(iso, req, cb, 0); /* lost on the way, as a blackholed peer looks */
	return 0;
}

void isolation_wrap(struct isolation *iso, struct raft_io *io, uv_loop_t *loop)
{
	unsigned i;

	iso->io = io;
	iso->start = io->start;
	iso->send = io->send;
	iso->recv = NULL;
	iso->pending = NULL;
	iso->pending_tail = &iso->pending;
	iso->on = false;
	iso->closed = false;
	iso->dropped_in = iso->dropped_out = iso->unaddressed = 0;
	memset(iso->heard, 0, sizeof iso->heard);
	acks_init(&iso->acks);
	uv_timer_init(loop, &iso->timer);
	iso->timer.data = iso;
	for (i = 0; i < ISOLATION_MAX; i++)
		if (wrapped_io[i] == io)
			break;
	if (i == ISOLATION_MAX)
		for (i = 0; i < ISOLATION_MAX; i++)
			if (wrapped_io[i] == NULL)
				break;
	if (i == ISOLATION_MAX)
		abort(); /* a process has one agent, a test a few: a bug, not input */
	wrapped_io[i] = io;
	wrapped_iso[i] = iso;
	io->start = on_start;
	io->send = on_send;
}

void isolation_set(struct isolation *iso, bool on)
{
	iso->on = on && !iso->closed;
}

bool isolation_on(const struct isolation *iso)
{
	return iso->on;
}

void isolation_close(struct isolation *iso)
{
	if (iso->closed)
		return;
	iso->on = false;
	iso->closed = true;
	complete(iso, RAFT_CANCELED);
	uv_close((uv_handle_t *)&iso->timer, NULL);
}
