/*
 * sync/target/entra_internal.h -- what entra.c (the port: queue, workers,
 * cancel) and entra_graph.c (one operation's Graph requests, on a worker)
 * share. Not an API: sync/target/entra.h is.
 */
#ifndef CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H
#define CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "sync/target/entra.h"

/* Answers are capped before they are kept (a list page of 999 users with a
 * few properties each is well under this). */
#define ENTRA_RESP_MAX (8u << 20)

/* The target's configuration, owned copies. Read-only once built: workers
 * read it without a lock. */
struct entra_cfg {
	char *url;
	struct oauth2 *auth;
	const struct http_tls *tls;
	char *anchor_property;
	char **user_attrs, **group_attrs; /* the mapping's names (entra_config) */
	size_t n_user_attrs, n_group_attrs;
	unsigned max_in_flight, max_attempts, backoff_min_ms, backoff_max_ms, timeout_ms;
};

/*
 * The run's adaptive request rate (AIMD, as TCP's congestion control, RFC
 * 5681 §3.1): none until Graph answers 429; then the rate measured over the
 * last second, halved, and halved again at each later 429 (at most once a
 * second: one burst's answers count once); every answer that is not a 429
 * adds 1/rate, so one more request a second per second of good answers.
 * Past 1000 requests a second the limit is dropped again.
 */
struct entra_budget {
	pthread_mutex_t mu;
	double rate;          /* requests a second; 0: no limit */
	uint64_t next_ms;     /* the next request's slot */
	uint64_t win_ms;      /* the measuring window's start */
	unsigned win_n;       /* requests sent in it */
	double win_rate;      /* the last full window's rate */
	uint64_t last_cut_ms;
	uint64_t cuts;        /* times halved, for the log */
};

struct entra_job;

/* Wait for the next slot (a worker, before each request). */
void entra__budget_take(struct entra_job *j);
/* An answer: 429 (true) or another (false). */
void entra__budget_answer(struct entra_job *j, bool throttled);

/* One target_op on its way: inputs copied at submit (the worker never
 * touches the engine's memory), outputs copied back in the loop. */
struct entra_job {
	struct entra_run *run;
	const struct entra_cfg *cfg;
	struct target_op *top; /* NULL once completed by cancel_all */
	target_done_cb cb;
	struct entra_job *next; /* the run's queue */
	int cancelled;          /* __atomic: the worker stops at the next step */
	uint64_t *hold_until;   /* the run's: no request before this uv_hrtime() ms (__atomic) */
	struct entra_budget *budget; /* the run's */

	enum target_action action;
	enum object_type type;
	char *anchor, *target_id;
	json_t *attrs;
	char **add, **remove;
	size_t n_add, n_remove;
	bool verify, exact;
	char *attr, *value;     /* TAKEN */
	char fence_node[32], fence_term[32], cluster[96];

	int status;
	bool permanent, created, matched, values_refused;
	bool taken;             /* TAKEN */
	char result_id[128];
	long http_status;
	unsigned attempts, retries;
	size_t n_add_done, n_remove_done;
	double duration_ms;
	char error[512];
};

/* Run job's requests, blocking (a libuv worker). Fills the outputs. */
void entra__exec(struct entra_job *j);

bool entra__cancelled(struct entra_job *j);

/* Reading Graph's answers (entra_answer.c; outside input, fuzzed). */

/* {"error":{"code","message"}}: both "" when absent. */
void entra__answer_error(const json_t *body, char *code, size_t codelen, char *msg, size_t msglen);
/* One response header line (n bytes, not terminated): its Retry-After in
 * seconds (capped at 3600), or -1 when it is not one or not a number. */
long entra__retry_after(const char *line, size_t n);
/* A list page: 1 and id when an object's `prop` equals anchor; 0 when none
 * does (*next: the @odata.nextLink, or NULL); -EBADMSG without a value list. */
int entra__page_find(const json_t *page, const char *prop, const char *anchor, char *id, size_t idlen,
		     const char **next);
/* A members/$ref page: each @odata.id's last segment becomes a key of ids;
 * *next as above; -EBADMSG without a value list. */
int entra__page_members(const json_t *page, json_t *ids, const char **next);
/* SelectUniqueValue's filtered page (TARGET_TAKEN): 1 when an object of
 * the value list does not carry `anchor` in `prop` (another object holds
 * the value), 0 when the list is empty or every object is ours, -EBADMSG
 * without a value list. */
int entra__page_taken(const json_t *page, const char *prop, const char *anchor);
/* The last segment of ".../directoryObjects/{id}", or NULL. */
const char *entra__ref_id(const char *ref);

#endif /* CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H */
