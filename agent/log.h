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

/* Set the node id stamped on every line and the lowest level written. */
void log_setup(uint64_t node_id, enum log_level min);

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
