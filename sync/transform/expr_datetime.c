/*
 * sync/transform/expr_datetime.c -- dates and times: FormatDateTime (.NET
 * custom date/time format strings, read and written in UTC), and CDate,
 * DateAdd, DateDiff, DateFromNum, NumFromDate and Now (docs/mapping-
 * expressions.md, one section each).
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/transform/expr_impl.h"

static char toupper_ascii(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }

static const char *const month_names[12] = {
	"January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December",
};
static const char *const day_names[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
};

struct dt {
	int year, mon, day, hour, min, sec;
	long frac;     /* 100 ns ticks, 0..9999999 */
	int off;       /* minutes east of UTC, when has_off */
	bool has_off;
	int pm;        /* -1 none, 0 AM, 1 PM */
	bool h12;
};

/* One token of a format: a specifier letter repeated `count` times, or
 * literal text (ch == 0). */
struct ftok {
	char ch;
	int count;
	const char *lit;
	size_t litlen;
};

/* Read the token at f; returns its length in the format, 0 at the end, or
 * -1 with *why set for a format .NET would reject or this does not support. */
static int ftok_next(const char *f, struct ftok *t, const char **why)
{
	static const char spec[] = "yMdHhmsfFtzK";
	static const int maxcount[] = {5, 4, 4, 2, 2, 2, 2, 7, 7, 2, 3, 1};
	size_t i = 0;

	*t = (struct ftok){0};
	if (!f[0])
		return 0;
	if (f[0] == '%' && f[1] && strchr(spec, f[1]))
		i = 1; /* "%d": one specifier on its own */
	const char *s = strchr(spec, f[i]);
	if (f[i] && s) {
		int k = 0;
		while (f[i + (size_t)k] == f[i])
			k++;
		if (k > maxcount[s - spec]) {
			*why = "a specifier is repeated more often than .NET allows";
			return -1;
		}
		t->ch = f[i];
		t->count = k;
		return (int)i + k;
	}
	if (f[0] == 'g') {
		*why = "the era specifier 'g' is not supported";
		return -1;
	}
	if (f[0] == '\'' || f[0] == '"') {
		const char *end = strchr(f + 1, f[0]);
		if (!end) {
			*why = "a quoted literal is not closed";
			return -1;
		}
		t->lit = f + 1;
		t->litlen = (size_t)(end - f - 1);
		return (int)(end - f) + 1;
	}
	if (f[0] == '\\' && f[1]) {
		t->lit = f + 1;
		t->litlen = 1;
		return 2;
	}
	t->lit = f;
	t->litlen = 1;
	return 1;
}

/* Exactly `min`..`max` digits. */
static bool read_num(const char **s, int min, int max, int *out)
{
	int v = 0, k = 0;
	while (k < max && ex_digit((*s)[k]))
		v = v * 10 + ((*s)[k++] - '0');
	if (k < min)
		return false;
	*s += k;
	*out = v;
	return true;
}

/* A name from `names` (or its 3-letter abbreviation), any case. */
static bool read_name(const char **s, const char *const *names, int n, bool full, int *out)
{
	for (int i = 0; i < n; i++) {
		size_t len = full ? strlen(names[i]) : 3;
		if (strncasecmp(*s, names[i], len) == 0) {
			*s += len;
			*out = i;
			return true;
		}
	}
	return false;
}

/* "+hh", "+hh:mm", "Z" */
static bool read_offset(const char **s, bool colon_mm, struct dt *d)
{
	int h, m = 0;
	if (**s == 'Z') {
		(*s)++;
		d->has_off = true;
		d->off = 0;
		return true;
	}
	if (**s != '+' && **s != '-')
		return false;
	int sign = **s == '-' ? -1 : 1;
	const char *p = *s + 1;
	if (!read_num(&p, 1, 2, &h))
		return false;
	if (colon_mm && !(*p == ':' && (p++, read_num(&p, 2, 2, &m))))
		return false;
	*s = p;
	d->has_off = true;
	d->off = sign * (h * 60 + m);
	return true;
}

static bool parse_tok(const char **s, const struct ftok *t, struct dt *d)
{
	int v, n = t->count;
	switch (t->ch) {
	case 'y':
		if (n <= 2) {
			if (!read_num(s, n, 2, &v))
				return false;
			d->year = v < 50 ? 2000 + v : 1900 + v; /* .NET's 2049 cut-off */
			return true;
		}
		return read_num(s, n < 4 ? 4 : n, n < 4 ? 4 : n, &d->year);
	case 'M':
		if (n >= 3) {
			if (!read_name(s, month_names, 12, n == 4, &v))
				return false;
			d->mon = v + 1;
			return true;
		}
		return read_num(s, n, 2, &d->mon);
	case 'd':
		if (n >= 3) /* a day name carries nothing the date does not */
			return read_name(s, day_names, 7, n == 4, &v);
		return read_num(s, n, 2, &d->day);
	case 'H':
		return read_num(s, n, 2, &d->hour);
	case 'h':
		d->h12 = true;
		return read_num(s, n, 2, &d->hour);
	case 'm':
		return read_num(s, n, 2, &d->min);
	case 's':
		return read_num(s, n, 2, &d->sec);
	case 'f':
	case 'F': {
		/* Any 1..7 digits whatever the count (0..7 for F): directory
		 * servers vary in the precision they write. */
		int k = 0;
		long f = 0;
		while (k < 7 && ex_digit((*s)[k]))
			f = f * 10 + ((*s)[k++] - '0');
		if (k == 0 && t->ch == 'f')
			return false;
		for (int i = k; i < 7; i++)
			f *= 10;
		*s += k;
		d->frac = f;
		return true;
	}
	case 't':
		if (toupper_ascii((*s)[0]) != 'A' && toupper_ascii((*s)[0]) != 'P')
			return false;
		d->pm = toupper_ascii((*s)[0]) == 'P';
		if (n == 2 && toupper_ascii((*s)[1]) != 'M')
			return false;
		*s += n;
		return true;
	case 'z':
		return read_offset(s, n == 3, d);
	case 'K':
		if (**s == 'Z' || **s == '+' || **s == '-')
			return read_offset(s, true, d);
		return true;
	}
	return false;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm, exact for every year). */
static long long days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, struct dt *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	d->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	d->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	d->year = (int)(yoe + era * 400 + (d->mon <= 2));
}

static int weekday(const struct dt *d) /* 0 = Sunday */
{
	long long z = days_from_civil(d->year, d->mon, d->day);
	return (int)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

/* .NET reads a one-letter format as a standard format ("d" = short date),
 * which this does not implement: refuse rather than read it as custom. */
static int fmt_check(const char *f, const char **why)
{
	struct ftok t;
	int k;
	if (f[0] && !f[1] && (ex_ident_start(f[0]))) {
		*why = "one-letter (standard) formats are not supported, write a custom format such as \"yyyy-MM-dd\"";
		return -1;
	}
	for (; (k = ftok_next(f, &t, why)) > 0; f += k)
		;
	return k;
}

static int dt_parse(const char *s, const char *fmt, struct dt *d, char *why, size_t whylen)
{
	const char *f = fmt, *bad = "invalid format";
	*d = (struct dt){.year = 1, .mon = 1, .day = 1, .pm = -1};
	for (;;) {
		struct ftok t, next;
		int k = ftok_next(f, &t, &bad);
		if (k < 0) {
			snprintf(why, whylen, "%s", bad);
			return -1;
		}
		if (k == 0)
			break;
		if (!t.ch && t.litlen == 1 && t.lit[0] == '.' && *s != '.') {
			/* "ss.fZ" also reads "...ssZ": a missing fraction is
			 * allowed, with its separator (.NET allows it for F). */
			int k2 = ftok_next(f + k, &next, &bad);
			if (k2 > 0 && (next.ch == 'f' || next.ch == 'F')) {
				f += k + k2;
				continue;
			}
		}
		bool ok = t.ch ? parse_tok(&s, &t, d) : strncmp(s, t.lit, t.litlen) == 0;
		if (!ok) {
			snprintf(why, whylen, "expected '%.*s' at \"%s\"", t.ch ? k : (int)t.litlen,
				 t.ch ? f : t.lit, s);
			return -1;
		}
		if (!t.ch)
			s += t.litlen;
		f += k;
	}
	if (*s) {
		snprintf(why, whylen, "unexpected \"%s\" after the end of the format", s);
		return -1;
	}
	if (d->h12 && d->hour >= 1 && d->hour <= 12)
		d->hour = d->hour % 12 + (d->pm == 1 ? 12 : 0);
	else if (d->h12)
		d->hour = 99;
	const char *range = d->year < 1 ? "year" : d->mon < 1 || d->mon > 12 ? "month"
		: d->day < 1 || d->day > days_in(d->year, d->mon) ? "day"
		: d->hour > 23 ? "hour" : d->min > 59 ? "minute" : d->sec > 59 ? "second" : NULL;
	if (range) {
		snprintf(why, whylen, "%s out of range", range);
		return -1;
	}
	if (d->has_off && d->off) { /* to UTC */
		long long m = days_from_civil(d->year, d->mon, d->day) * 1440 + d->hour * 60 + d->min - d->off;
		long long z = m >= 0 ? m / 1440 : -((-m + 1439) / 1440);
		m -= z * 1440;
		civil_from_days(z, d);
		d->hour = (int)(m / 60);
		d->min = (int)(m % 60);
		if (d->year < 1 || d->year > 9999) {
			snprintf(why, whylen, "year out of range in UTC");
			return -1;
		}
	}
	return 0;
}

static void put_num(struct sbuf *b, int width, long v)
{
	char num[32];
	snprintf(num, sizeof num, "%0*ld", width, v);
	sb_adds(b, num);
}

/* Write d (UTC) with format fmt, already checked by fmt_check. */
static void dt_format(const struct dt *d, const char *fmt, struct sbuf *b)
{
	struct ftok t;
	const char *bad = "invalid format";
	int k;
	for (; (k = ftok_next(fmt, &t, &bad)) > 0; fmt += k) {
		int n = t.count;
		char frac[8];
		switch (t.ch) {
		case 0:
			sb_addn(b, t.lit, t.litlen);
			break;
		case 'y':
			put_num(b, n, n <= 2 ? d->year % 100 : d->year);
			break;
		case 'M':
			if (n >= 3)
				sb_addn(b, month_names[d->mon - 1], n == 3 ? 3 : strlen(month_names[d->mon - 1]));
			else
				put_num(b, n, d->mon);
			break;
		case 'd':
			if (n >= 3)
				sb_addn(b, day_names[weekday(d)], n == 3 ? 3 : strlen(day_names[weekday(d)]));
			else
				put_num(b, n, d->day);
			break;
		case 'H':
			put_num(b, n, d->hour);
			break;
		case 'h':
			put_num(b, n, d->hour % 12 ? d->hour % 12 : 12);
			break;
		case 'm':
			put_num(b, n, d->min);
			break;
		case 's':
			put_num(b, n, d->sec);
			break;
		case 'f':
		case 'F':
			snprintf(frac, sizeof frac, "%07ld", d->frac);
			if (t.ch == 'F')
				while (n > 0 && frac[n - 1] == '0')
					n--;
			sb_addn(b, frac, (size_t)n);
			/* .NET drops the separator of an empty F fraction */
			if (n == 0 && b->len && b->p[b->len - 1] == '.')
				b->p[--b->len] = '\0';
			break;
		case 't':
			sb_addn(b, d->hour < 12 ? "AM" : "PM", (size_t)n);
			break;
		case 'z':
			sb_adds(b, n == 1 ? "+0" : n == 2 ? "+00" : "+00:00");
			break;
		case 'K':
			sb_addc(b, 'Z');
			break;
		}
	}
}

enum { DTS_LEAD = 1, DTS_TRAIL = 2 };

struct fdt {
	const char *in, *out;
	int styles;
};

static int x_fdt(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	const struct fdt *a = arg;
	const char *s = in, *e = in + strlen(in);
	char why[200];
	struct dt d;
	if (a->styles & DTS_LEAD)
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
	if (a->styles & DTS_TRAIL)
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	char *v = xstrndup(s, (size_t)(e - s));
	int rc = 0;
	if (dt_parse(v, a->in, &d, why, sizeof why))
		rc = ex_efail(c, n, "\"%s\" does not match inputFormat \"%s\": %s", in, a->in, why);
	else
		dt_format(&d, a->out, b);
	free(v);
	return rc;
}

static int styles_parse(const char *s, int *out)
{
	static const struct { const char *name; int flags; } names[] = {
		{"None", 0}, {"AllowLeadingWhite", DTS_LEAD}, {"AllowTrailingWhite", DTS_TRAIL},
		{"AllowWhiteSpaces", DTS_LEAD | DTS_TRAIL}, {"AllowInnerWhite", 0},
		{"NoCurrentDateDefault", 0}, {"AdjustToUniversal", 0}, {"AssumeLocal", 0},
		{"AssumeUniversal", 0}, {"RoundtripKind", 0},
	};
	*out = 0;
	while (*s) {
		while (*s == ' ' || *s == ',' || *s == '|')
			s++;
		size_t len = 0;
		while (s[len] && s[len] != ' ' && s[len] != ',' && s[len] != '|')
			len++;
		if (!len)
			break;
		size_t i = 0;
		for (; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0)
				break;
		if (i == sizeof names / sizeof names[0])
			return -1;
		*out |= names[i].flags;
		s += len;
	}
	return 0;
}

/* FormatDateTime(source, dateTimeStyles, inputFormat, outputFormat), or the
 * older FormatDateTime(source, inputFormat, outputFormat). */
int ex_f_formatdatetime(struct ectx *c, const struct node *n, struct expr_value *out)
{
	size_t fi = n->nargs == 4 ? 2 : 1;
	char *styles = NULL, *in = NULL, *outf = NULL;
	const char *bad = "invalid format";
	struct fdt a = {0};
	int rc = 0;

	if ((fi == 2 && (rc = ex_arg_str(c, n, 1, &styles))) || (rc = ex_arg_str(c, n, fi, &in)) ||
	    (rc = ex_arg_str(c, n, fi + 1, &outf)))
		goto out;
	if (styles && styles_parse(styles, &a.styles))
		rc = ex_efail(c, n, "unknown dateTimeStyles \"%s\"", styles);
	else if (!in || !outf)
		rc = ex_efail(c, n, "%s is null", !in ? "inputFormat" : "outputFormat");
	else if (fmt_check(in, &bad))
		rc = ex_efail(c, n, "inputFormat \"%s\": %s", in, bad);
	else if (fmt_check(outf, &bad))
		rc = ex_efail(c, n, "outputFormat \"%s\": %s", outf, bad);
	if (rc)
		goto out;
	a.in = in;
	a.out = outf;
	rc = ex_map_arg(c, n, 0, x_fdt, &a, out);
out:
	free(styles);
	free(in);
	free(outf);
	return rc;
}

/* Formats and styles given as literals are checked when the configuration
 * is loaded, not at the first user. */
int ex_check_fdt(struct parser *p, struct node *n)
{
	size_t fi = n->nargs == 4 ? 2 : 1;
	const char *bad = "invalid format";
	int st;
	if (fi == 2 && ex_literal(n->args[1]) && styles_parse(n->args[1]->text, &st))
		return ex_perr_col(p, n->args[1]->col, "FormatDateTime: unknown dateTimeStyles \"%s\"",
				n->args[1]->text);
	for (size_t i = fi; i < fi + 2; i++)
		if (ex_literal(n->args[i]) && fmt_check(n->args[i]->text, &bad))
			return ex_perr_col(p, n->args[i]->col, "FormatDateTime: %s \"%s\": %s",
					i == fi ? "inputFormat" : "outputFormat", n->args[i]->text, bad);
	return 0;
}


/* ---- DateTime values: CDate, DateAdd, DateDiff, DateFromNum, NumFromDate, Now ----
 *
 * Entra has no DateTime type in a mapping's values: CDate, DateAdd and Now
 * return the UTC date as text in .NET's invariant general format
 * "M/d/yyyy h:mm:ss tt" (3/16/2020 7:00:00 AM), and the functions taking a
 * DateTime read that text back. A point in time is held as .NET ticks: 100 ns
 * since 0001-01-01 00:00 UTC (System.DateTime.Ticks).
 */

#define TICKS_PER_SEC 10000000LL
#define TICKS_PER_DAY (86400LL * TICKS_PER_SEC)
#define DT_OUT "M/d/yyyy h:mm:ss tt"

static long long ticks_of(const struct dt *d)
{
	long long days = days_from_civil(d->year, d->mon, d->day) - days_from_civil(1, 1, 1);
	return days * TICKS_PER_DAY + ((d->hour * 60LL + d->min) * 60 + d->sec) * TICKS_PER_SEC + d->frac;
}

/* Ticks of 9999-12-31 23:59:59.9999999, the last DateTime .NET has. */
static long long ticks_max(void)
{
	return (days_from_civil(10000, 1, 1) - days_from_civil(1, 1, 1)) * TICKS_PER_DAY - 1;
}

static void dt_of_ticks(long long t, struct dt *d)
{
	long long days = t / TICKS_PER_DAY, rem = t % TICKS_PER_DAY;
	*d = (struct dt){.pm = -1};
	civil_from_days(days + days_from_civil(1, 1, 1), d);
	d->frac = (long)(rem % TICKS_PER_SEC);
	rem /= TICKS_PER_SEC;
	d->sec = (int)(rem % 60);
	d->min = (int)(rem / 60 % 60);
	d->hour = (int)(rem / 3600);
}

static void put_ticks(struct sbuf *b, long long t)
{
	struct dt d;
	dt_of_ticks(t, &d);
	dt_format(&d, DT_OUT, b);
}

/*
 * .NET's DateTime.Parse with the invariant culture and AdjustToUniversal
 * accepts far more than anyone writes in a directory; these are the forms
 * Microsoft's examples use and the ones directories hold: ISO 8601 / RFC 3339
 * with or without time and offset (Workday's "2020-03-16-07:00" is a date
 * with an offset), the invariant general format that CDate and Now write,
 * and LDAP GeneralizedTime (RFC 4517 §3.3.13). A value without an offset is
 * UTC. docs/mapping-expressions.md, "CDate", lists them.
 */
static const char *const any_formats[] = {
	"yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK",
	"yyyy-MM-dd'T'HH:mmK",
	"yyyy-MM-dd HH:mm:ss.FFFFFFFK",
	"yyyy-MM-dd HH:mmK",
	"yyyy-MM-ddK",
	"M/d/yyyy h:mm:ss tt",
	"M/d/yyyy h:mm tt",
	"M/d/yyyy H:mm:ss",
	"M/d/yyyy H:mm",
	"M/d/yyyy",
	"yyyyMMddHHmmss.FK",
	"yyyyMMddHHmmK",
};

static int parse_any(const char *s, long long *t)
{
	struct dt d;
	char why[128];
	struct sbuf trimmed = {0};
	while (*s == ' ' || *s == '\t')
		s++;
	sb_adds(&trimmed, s);
	while (trimmed.len && (trimmed.p[trimmed.len - 1] == ' ' || trimmed.p[trimmed.len - 1] == '\t'))
		trimmed.p[--trimmed.len] = '\0';
	int rc = -1;
	for (size_t i = 0; rc && i < sizeof any_formats / sizeof any_formats[0]; i++)
		if (trimmed.len && dt_parse(trimmed.p, any_formats[i], &d, why, sizeof why) == 0) {
			*t = ticks_of(&d);
			rc = 0;
		}
	sb_free(&trimmed);
	return rc;
}

static int bad_date(struct ectx *c, const struct node *n, const char *s)
{
	return ex_efail(c, n, "\"%s\" is not a date and time (ISO 8601 such as 2021-06-30T08:00:00+02:00 "
			"or 2021-06-30-07:00, M/d/yyyy h:mm:ss tt, or LDAP GeneralizedTime)", s);
}

static int x_cdate(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	long long t;
	if (parse_any(in, &t))
		return bad_date(c, n, in);
	put_ticks(b, t);
	return 0;
}

static int f_cdate(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_cdate, NULL, out);
}

/* The clock, once per evaluation of Now(): the caller's fixed time, else
 * the system's UTC clock. */
static long long now_ticks(const struct ectx *c)
{
	long long secs = c->now ? c->now : (long long)time(NULL);
	return (days_from_civil(1970, 1, 1) - days_from_civil(1, 1, 1)) * TICKS_PER_DAY + secs * TICKS_PER_SEC;
}

static int f_now(struct ectx *c, const struct node *n, struct expr_value *out)
{
	(void)n;
	struct sbuf b = {0};
	put_ticks(&b, now_ticks(c));
	ex_vpush(out, sb_take(&b));
	return 0;
}

/* VBA's DateAdd/DateDiff intervals, any case. "y" (day of year) and "w"
 * (weekday) add days, as in VBA; Microsoft lists yyyy m d ww h n s. */
enum interval { IV_YEAR, IV_QUARTER, IV_MONTH, IV_DAYOFYEAR, IV_DAY, IV_WEEKDAY, IV_WEEK, IV_HOUR, IV_MINUTE,
		IV_SECOND };

static int interval_of(const char *s)
{
	static const char *const names[] = {"yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

static int arg_interval(struct ectx *c, const struct node *n, int *iv)
{
	char *s;
	int rc = ex_arg_str(c, n, 0, &s);
	if (rc)
		return rc;
	*iv = s ? interval_of(s) : -1;
	if (*iv < 0)
		rc = ex_efail(c, n, "interval must be one of yyyy q m y d w ww h n s, got %s%s%s", s ? "\"" : "",
			      s ? s : "null", s ? "\"" : "");
	free(s);
	return rc;
}

static int check_interval(struct parser *p, struct node *n)
{
	const struct node *a = n->args[0];
	if (a->kind == N_STR && interval_of(a->text) < 0)
		return ex_perr_col(p, a->col, "%s: interval must be one of yyyy q m y d w ww h n s, got \"%s\"",
				   n->fn->name, a->text);
	return 0;
}

struct dateadd {
	int iv;
	long long k;
};

/* DateTime.AddMonths: the day is clamped to the end of the month
 * (1/31 + 1 month = 2/28 or 2/29). */
static int add_months(struct dt *d, long long k)
{
	long long m = d->year * 12LL + (d->mon - 1) + k;
	if (m < 12 || m >= 10000 * 12LL)
		return -1;
	d->year = (int)(m / 12);
	d->mon = (int)(m % 12) + 1;
	if (d->day > days_in(d->year, d->mon))
		d->day = days_in(d->year, d->mon);
	return 0;
}

static int x_dateadd(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	const struct dateadd *a = arg;
	long long t, unit = 0;
	struct dt d;
	if (parse_any(in, &t))
		return bad_date(c, n, in);
	switch (a->iv) {
	case IV_YEAR:
	case IV_QUARTER:
	case IV_MONTH:
		dt_of_ticks(t, &d);
		if ((a->k > 120000 || a->k < -120000) ||
		    add_months(&d, a->iv == IV_YEAR ? a->k * 12 : a->iv == IV_QUARTER ? a->k * 3 : a->k))
			return ex_efail(c, n, "the result is outside years 1 to 9999");
		t = ticks_of(&d);
		break;
	case IV_DAYOFYEAR:
	case IV_DAY:
	case IV_WEEKDAY:
		unit = TICKS_PER_DAY;
		break;
	case IV_WEEK:
		unit = 7 * TICKS_PER_DAY;
		break;
	case IV_HOUR:
		unit = 3600 * TICKS_PER_SEC;
		break;
	case IV_MINUTE:
		unit = 60 * TICKS_PER_SEC;
		break;
	case IV_SECOND:
		unit = TICKS_PER_SEC;
		break;
	}
	if (unit) {
		if (a->k > ticks_max() / unit || a->k < -(ticks_max() / unit) ||
		    t + a->k * unit < 0 || t + a->k * unit > ticks_max())
			return ex_efail(c, n, "the result is outside years 1 to 9999");
		t += a->k * unit;
	}
	put_ticks(b, t);
	return 0;
}

static int f_dateadd(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct dateadd a;
	int rc = arg_interval(c, n, &a.iv);
	if (!rc)
		rc = ex_arg_int(c, n, 1, "value", &a.k);
	return rc ? rc : ex_map_arg(c, n, 2, x_dateadd, &a, out);
}

/* Microsoft.VisualBasic's DateAndTime.DateDiff: years, quarters and months
 * count the boundaries crossed (12/31 to 1/1 is one year); days, hours,
 * minutes and seconds are the elapsed time truncated toward zero; "w" is
 * whole weeks of elapsed days; "ww" counts the Sundays crossed (calendar
 * weeks starting on Sunday, VBA's default FirstDayOfWeek). */
static long long datediff(int iv, long long t1, long long t2)
{
	struct dt a, b;
	dt_of_ticks(t1, &a);
	dt_of_ticks(t2, &b);
	long long dt = t2 - t1;
	switch (iv) {
	case IV_YEAR:
		return (long long)b.year - a.year;
	case IV_QUARTER:
		return (b.year * 4LL + (b.mon - 1) / 3) - (a.year * 4LL + (a.mon - 1) / 3);
	case IV_MONTH:
		return (b.year * 12LL + b.mon) - (a.year * 12LL + a.mon);
	case IV_DAYOFYEAR:
	case IV_DAY:
		return dt / TICKS_PER_DAY;
	case IV_WEEKDAY:
		return dt / TICKS_PER_DAY / 7;
	case IV_WEEK: {
		long long da = days_from_civil(a.year, a.mon, a.day) - weekday(&a);
		long long db = days_from_civil(b.year, b.mon, b.day) - weekday(&b);
		return (db - da) / 7;
	}
	case IV_HOUR:
		return dt / (3600 * TICKS_PER_SEC);
	case IV_MINUTE:
		return dt / (60 * TICKS_PER_SEC);
	default:
		return dt / TICKS_PER_SEC;
	}
}

static int f_datediff(struct ectx *c, const struct node *n, struct expr_value *out)
{
	int iv;
	char *s1 = NULL, *s2 = NULL;
	long long t1, t2;
	int rc = arg_interval(c, n, &iv);
	if (!rc)
		rc = ex_arg_str(c, n, 1, &s1);
	if (!rc)
		rc = ex_arg_str(c, n, 2, &s2);
	if (rc || !s1 || !s2) /* a null date: null, like every function of a null */
		goto out;
	if (parse_any(s1, &t1)) {
		rc = bad_date(c, n, s1);
	} else if (parse_any(s2, &t2)) {
		rc = bad_date(c, n, s2);
	} else {
		char num[32];
		snprintf(num, sizeof num, "%lld", datediff(iv, t1, t2));
		ex_vpush_str(out, num);
	}
out:
	free(s1);
	free(s2);
	return rc;
}

/* Active Directory's dates (accountExpires, lastLogonTimestamp, pwdLastSet)
 * are Windows FILETIMEs: 100 ns since 1601-01-01 UTC, the unit of .NET
 * ticks (DateTime.FromFileTimeUtc, ToFileTimeUtc). */
static long long filetime_epoch(void)
{
	return (days_from_civil(1601, 1, 1) - days_from_civil(1, 1, 1)) * TICKS_PER_DAY;
}

static int x_datefromnum(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	long long v;
	if (ex_parse_ll(in, &v) || v < 0 || v > ticks_max() - filetime_epoch())
		return ex_efail(c, n, "\"%s\" is not an Active Directory date (a FILETIME: 100 ns since "
				"1601-01-01, 0 to 2650467743999999999)", in);
	put_ticks(b, v + filetime_epoch());
	return 0;
}

static int f_datefromnum(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_datefromnum, NULL, out);
}

static int x_numfromdate(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	long long t;
	char num[32];
	if (parse_any(in, &t))
		return bad_date(c, n, in);
	if (t < filetime_epoch())
		return ex_efail(c, n, "\"%s\" is before 1601-01-01, which Active Directory cannot hold", in);
	snprintf(num, sizeof num, "%lld", t - filetime_epoch());
	sb_adds(b, num);
	return 0;
}

static int f_numfromdate(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_numfromdate, NULL, out);
}

const struct func ex_date_funcs[] = {
	{"CDate", 1, 1, 0, NULL, f_cdate, 0},
	{"DateAdd", 3, 3, 1u << 1, check_interval, f_dateadd, 0},
	{"DateDiff", 3, 3, 0, check_interval, f_datediff, 0},
	{"DateFromNum", 1, 1, 0, NULL, f_datefromnum, 0},
	{"Now", 0, 0, 0, NULL, f_now, EXPR_VOLATILE},
	{"NumFromDate", 1, 1, 0, NULL, f_numfromdate, 0},
};
const size_t ex_n_date_funcs = sizeof ex_date_funcs / sizeof ex_date_funcs[0];
