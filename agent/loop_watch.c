/*
 * agent/loop_watch.c -- notices when the event loop was blocked
 * (loop_watch.h says why it exists).
 */
#include "agent/loop_watch.h"

#include "agent/log.h"


static void on_tick(uv_timer_t *t)
{
	struct loop_watch *w = t->data;
	uint64_t now = uv_hrtime();
	uint64_t lag = now > w->due_ns ? (now - w->due_ns) / 1000000 : 0;

	w->due_ns = now + (uint64_t)LOOP_WATCH_PERIOD_MS * 1000000;
	if (lag > w->lag_max_ms)
		w->lag_max_ms = lag;
	if (lag <= w->stall_ms)
		return;
	w->stalls++;
	w->last_lag_ms = lag;
	if (w->last_warn_ns != 0 && now - w->last_warn_ns < (uint64_t)LOOP_WATCH_WARN_EVERY_MS * 1000000)
		return;
	log_warn("the event loop was blocked: heartbeats and votes waited; a long stall lets the followers elect another leader",
		 "blocked_ms=%llu stalls_since_last_warning=%llu stall_threshold_ms=%llu max_ms=%llu",
		 (unsigned long long)lag, (unsigned long long)(w->stalls - w->warned_stalls),
		 (unsigned long long)w->stall_ms, (unsigned long long)w->lag_max_ms);
	w->warned_stalls = w->stalls;
	w->last_warn_ns = now;
}

int loop_watch_start(struct loop_watch *w, uv_loop_t *loop, uint64_t stall_ms)
{
	int rv;

	*w = (struct loop_watch){.stall_ms = stall_ms};
	rv = uv_timer_init(loop, &w->timer);
	if (rv != 0)
		return rv;
	w->timer.data = w;
	w->due_ns = uv_hrtime() + (uint64_t)LOOP_WATCH_PERIOD_MS * 1000000;
	return uv_timer_start(&w->timer, on_tick, LOOP_WATCH_PERIOD_MS, LOOP_WATCH_PERIOD_MS);
}

void loop_watch_close(struct loop_watch *w)
{
	uv_close((uv_handle_t *)&w->timer, NULL);
}
