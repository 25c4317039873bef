/* agent/log.c -- see log.h. */
#include "agent/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t log_node;
static enum log_level log_min = LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_setup(uint64_t node_id, enum log_level min)
{
	log_node = node_id;
	log_min = min;
}

int log_level_parse(const char *name)
{
	int i;
	for (i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "info";
}

const char *log_quote(char *buf, unsigned size, const char *s)
{
	unsigned o = 0;
	const char *p;
	int plain = s[0] != '\0';

	for (p = s; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
			plain = 0;
	if (plain) {
		snprintf(buf, size, "%s", s);
		return buf;
	}
	if (size < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (p = s; *p && o + 3 < size; p++) {
		if (*p == '"' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
	char line[4096], ts[32], q[1024];
	struct timespec now;
	struct tm tm;
	int n;
	va_list ap;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "time=%s.%03ldZ level=%s node=%llu msg=%s", ts,
		     now.tv_nsec / 1000000, names[level], (unsigned long long)log_node,
		     log_quote(q, sizeof q, msg));
	if (fields != NULL && n > 0 && (size_t)n < sizeof line - 2) {
		line[n++] = ' ';
		va_start(ap, fields);
		vsnprintf(line + n, sizeof line - (size_t)n, fields, ap);
		va_end(ap);
	}
	/* One write per line so lines from threads never interleave. */
	n = (int)strlen(line);
	if ((size_t)n < sizeof line - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	}
	fputs(line, stderr);
}
