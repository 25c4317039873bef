/*
 * agent/log.h -- structured logs to stderr.
 *
 * One line per event, logfmt style, so both people and log shippers read it:
 *     time=2026-11-24T17:13:03.123Z level=info node=1 msg="became leader" term=3
 * The message is fixed text; variable parts go in key=value fields, so logs
 * can be searched by field. Values with spaces or quotes are quoted.
 */
#ifndef CANOPY_AGENT_LOG_H
#define CANOPY_AGENT_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/*
 * log.format: text (the logfmt line above, the default) or json: one JSON
 * object per line with "time", "level", "node", "msg" and then every field
 * (a value of digits only is a JSON number, anything else a string):
 *     {"time":"2026-11-24T17:13:03.123Z","level":"info","node":1,"msg":"became leader","term":3}
 */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Set the node id stamped on every line and the lowest level written. */
void log_setup(uint64_t node_id, enum log_level min);

/* Choose the line format (default text). */
void log_set_format(enum log_format format);

/* "text" | "json" */
const char *log_format_name(enum log_format format);

/*
 * Rate limit for a stream of like errors: the first is written at once, the
 * ones within the next `window_s` seconds are only counted, and the next
 * write after the window first says how many were held back
 * ("msg=... suppressed=N window_s=M" on a summary line). Single-threaded:
 * use one per thread (the loop's).
 */
struct log_limit {
	unsigned window_s;
	int64_t window_start_ms; /* 0: no window open */
	unsigned suppressed;
};

/* Like log_write(), through `lim`: returns whether the line was written. */
int log_limited(struct log_limit *lim, enum log_level level, const char *msg, const char *fields, ...)
	__attribute__((format(printf, 4, 5)));

/* The line for what `lim` held back, if any ("N more in the last M s"), and
 * close its window: call it from a timer so a burst that stopped is summed
 * up too. */
void log_limit_flush(struct log_limit *lim, enum log_level level, const char *msg);

/* Parse "debug|info|warn|error"; returns -1 if unknown. */
int log_level_parse(const char *name);

/* "debug" | "info" | "warn" | "error" */
const char *log_level_name(enum log_level level);

/*
 * Write one line. `fields` is a printf format producing space-separated
 * key=value pairs (may be NULL); use log_quote() for free text values.
 */
void log_write(enum log_level level, const char *msg, const char *fields, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/*
 * Quote `s` for a logfmt value into `buf` ("..." with \" and \\ escaped, when
 * needed) and return buf. Never fails; truncates to the buffer.
 */
const char *log_quote(char *buf, unsigned size, const char *s);

#endif /* CANOPY_AGENT_LOG_H */
