/*
 * sync/target/entra_internal.h -- what entra.c (the port: queue, workers,
 * cancel) and entra_graph.c (one operation's Graph requests, on a worker)
 * share. Not an API: sync/target/entra.h is.
 *
 * The wire: every request of the run -- Graph's, the $batch envelopes
 * (entra_batch.c), and the bulkUpload mode's (entra_bulk.c) -- goes through
 * the run's HTTP engine (http_multi.h), the same libcurl multi handle on
 * the loop as the SCIM target's: one transport, one answer buffer, one
 * header parser, and connections reused across all of the run's threads
 * (keep-alive; HTTP/2 multiplexing where Graph offers it).
 *
 * Why the operations still run on threads of their own: an operation is
 * sequential code (entra_graph.c: lookups, paging, member chunks, retries
 * with budget waits and backoff, the batcher's gathering), and turning it
 * into step machines on the loop like SCIM's was more than this change
 * could carry with its tests. So each thread keeps that code and hands
 * every request to the loop's engine with http_multi_call() (a queue and a
 * uv_async_t), blocking until its answer; waits (budget, Retry-After,
 * backoff) stay sleeps on the thread. Moving the operations onto the loop
 * (no threads; waits as uv timers) is the next step, and the engine needs
 * no change for it.
 */
#ifndef CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H
#define CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <curl/curl.h>
#include <uv.h>

#include "sync/target/entra.h"
#include "sync/target/http_multi.h"

/* Answers are capped before they are kept (a list page of 999 users with a
 * few properties each is well under this). */
#define ENTRA_RESP_MAX (8u << 20)
/* Graph's Retry-After is capped at an hour before it is used. */
#define ENTRA_RETRY_AFTER_MAX_S 3600

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
	double max_requests_per_s;
};

/*
 * The run's request budget: a token bucket (the algorithm Graph's identity
 * limits themselves use, docs/entra.md "Throttling") filled at `rate`
 * requests a second and holding at most `burst` -- a tenth of a second's
 * worth: after a pause we do not spend at once the slack Graph keeps for our
 * timing jitter. `rate` starts at the configured `max_rate`
 * (target.max_requests_per_s) and adapts below it, AIMD as TCP's congestion
 * control (RFC 5681 §3.1; the decrease factor 0.7 is CUBIC's, RFC 9438
 * §4.6): a 429 cuts it to 0.7 of the rate measured over the last second (at
 * most once a second: one burst's answers count once); every other answer
 * adds 1/rate, so one more request a second per second of good answers,
 * never above max_rate. A request waits for its token in the order it asked
 * (the debt below zero is a queue): retries take their turn like any other.
 */
struct entra_budget {
	pthread_mutex_t mu;
	double max_rate;      /* requests a second, configured (> 0) */
	double rate;          /* in force: (0, max_rate] */
	double burst;         /* tokens at most */
	double tokens;        /* may be negative: tokens promised to waiting requests */
	uint64_t at_ms;       /* tokens counted up to here */
	uint64_t win_ms;      /* the measuring window's start */
	unsigned win_n;       /* requests sent in it */
	double win_rate;      /* the last full window's rate */
	uint64_t last_cut_ms;
	uint64_t cuts;        /* times cut */
	uint64_t throttled;   /* answers 429 */
};

/* A budget of max_rate requests a second, full. */
void entra__budget_init(struct entra_budget *b, double max_rate);

struct entra_job;

/*
 * Parallel JSON batching (entra_batch.c): the run's threads hand their
 * requests here instead of sending them; whichever thread finds requests
 * waiting and nobody sending gathers up to ENTRA_BATCH_MAX of them (waiting
 * at most ENTRA_BATCH_GATHER_MS for the other busy threads' requests) and
 * sends them as one POST /$batch -- or, when it found only its own, as
 * itself. The requests come from different operations, hence different
 * objects (the engine has one operation an object out at a time), so none
 * depends on another: the batch is a parallel one, no dependsOn.
 */
#define ENTRA_BATCH_MAX 20
#define ENTRA_BATCH_GATHER_MS 3

struct entra_breq;

struct entra_batcher {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entra_breq *head, *tail; /* waiting to be sent, FIFO */
	unsigned n;                     /* in that list */
	bool sending;                   /* a thread is gathering or sending */
	unsigned active;                /* threads running an operation */
	uint64_t batches, batched;      /* envelopes sent; requests in them */
};

/* One exchange's outcome: a plain request's, or one request's of a batch. */
struct entra_reply {
	int cc;             /* 0: answered; else no answer, err says why */
	bool too_big;
	long status;
	json_t *body;       /* owned; NULL: none or not JSON */
	long retry_after_s; /* -1: none */
	char err[CURL_ERROR_SIZE];
};

/* The headers of every request of the run: Authorization with token,
 * Accept (JSON), Content-Type when given, the fencing headers (X-Canopy-Node,
 * -Term, -Cluster when not ""). The caller owns the list. */
struct curl_slist *entra__headers(const char *token, const char *content_type, const char *node, const char *term,
				  const char *cluster);
/* Send one request through the run's engine, no retries (entra_graph.c;
 * blocks the calling thread). Returns 0 with *out filled (answered or
 * not), or -EINVAL when TLS cannot be set up. */
int entra__wire(struct entra_job *j, const char *token, const char *method, const char *url, const char *payload,
		struct entra_reply *out);
/* The same through the run's batcher (blocks until this request's answer,
 * which may have travelled in a $batch). */
int entra__batch_exchange(struct entra_job *j, const char *token, const char *method, const char *url,
			  const char *payload, struct entra_reply *out);

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
	struct entra_batcher *batcher; /* the run's; NULL: every request alone */
	struct http_multi *http;       /* the run's engine (http_multi_call from the thread) */

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
	bool denied;      /* Graph refused the application: 401 after a new token, 403,
			   * or the token endpoint refused the client (entra.h, "Quarantine") */
	char denied_method[8], denied_path[160]; /* the request refused */
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
/* A $batch answer ({"responses":[{id, status, headers?, body?}]}): the
 * response to request `id` -- 0 with its status, Retry-After in seconds
 * (capped at 3600; -1: none) and body (borrowed; NULL: none); -ENOENT when
 * no response carries that id; -EBADMSG without a responses list, or when
 * that response has no numeric status. */
int entra__batch_response(const json_t *answer, const char *id, long *status, long *retry_after_s,
			  const json_t **body);

#endif /* CANOPY_SYNC_TARGET_ENTRA_INTERNAL_H */
