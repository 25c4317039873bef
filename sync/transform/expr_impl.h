/*
 * sync/transform/expr_impl.h -- internals shared by the files of the
 * mapping-expression language; nothing outside sync/transform/expr*.c
 * includes it (the API is expr.h).
 *
 *   expr.c           values, messages, the parser, the evaluation core and
 *                    the entry points
 *   expr_funcs.c     the function table and the string, list and logic
 *                    functions
 *   expr_regex.c     regular expressions (PCRE2) and Replace
 *   expr_unicode.c   UTF-8, case mapping, white space, diacritics
 *                    (libunistring)
 *   expr_datetime.c  FormatDateTime and the DateTime functions (CDate,
 *                    DateAdd, DateDiff, DateFromNum, NumFromDate, Now)
 *   expr_random.c    RandomString
 *   expr_binary.c    base64, UTF-8 hex, SIDs and GUIDs (binary values are
 *                    carried as base64 text)
 *
 * Memory: every allocation goes through common/xalloc.h, which logs and
 * aborts when memory runs out, so nothing here returns -ENOMEM.
 */
#ifndef CANOPY_SYNC_TRANSFORM_EXPR_IMPL_H
#define CANOPY_SYNC_TRANSFORM_EXPR_IMPL_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/transform/expr.h"

#define ARGS_MANY UINT_MAX
#define BAD_CP UINT32_MAX /* ex_utf8_next: a byte that is not valid UTF-8 */

#if defined(__GNUC__)
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF(f, a)
#endif

/* ---- Growable strings ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static inline void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void sb_adds(struct sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
static inline void sb_addc(struct sbuf *b, char c) { sb_addn(b, &c, 1); }

static inline void sb_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){0};
}

/* Hand the string over ("" if nothing was added). */
static inline char *sb_take(struct sbuf *b)
{
	char *p = b->p ? b->p : xstrdup("");
	*b = (struct sbuf){0};
	return p;
}

/* ---- Small character tests (ASCII) ---- */

static inline bool ex_digit(char c) { return c >= '0' && c <= '9'; }
static inline bool ex_ident_start(char c)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static inline bool ex_ident_char(char c) { return ex_ident_start(c) || ex_digit(c); }
/* The value of a hex digit, either case; -1 for anything else. */
static inline int ex_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- Value lists (expr.c) ---- */

void ex_vpush(struct expr_value *v, char *s);                 /* takes `s` */
void ex_vpush_str(struct expr_value *v, const char *s);       /* copies */
void ex_vpush_n(struct expr_value *v, const char *s, size_t len);
void ex_vpush_bool(struct expr_value *v, bool b);
void ex_vappend(struct expr_value *dst, struct expr_value *src); /* src ends null */

/* ---- The tree ---- */

/* N_CMP: a comparison; its operator is in `op`. */
enum nkind { N_STR, N_NUM, N_BOOL, N_ATTR, N_OMIT, N_CALL, N_CMP };
enum cmpop { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

struct ectx;
struct node;
struct parser;
struct rx;
struct rxcache;

struct func {
	const char *name;
	unsigned min, max;   /* argument counts; max may be ARGS_MANY */
	unsigned intargs;    /* bit i: argument i is an integer (checked on literals) */
	int (*check)(struct parser *p, struct node *n);
	int (*eval)(struct ectx *c, const struct node *n, struct expr_value *out);
	unsigned traits;     /* EXPR_VOLATILE, EXPR_REDACT, EXPR_UNIQUE (expr.h) */
};

struct node {
	enum nkind kind;
	unsigned col;
	char *text;             /* literal value, attribute name */
	const struct func *fn;  /* N_CALL */
	enum cmpop op;          /* N_CMP */
	struct node **args;     /* N_CALL, N_CMP */
	size_t nargs;
	struct rx *rx;          /* Replace with a literal pattern, compiled at parse */
	struct rxcache *rxc;    /* Replace with a computed pattern: compiled ones */
};

struct parser {
	const char *s;
	size_t pos;
	char *err;
	size_t errlen;
};

struct ectx {
	expr_lookup_fn lookup;
	void *ctx;
	expr_taken_fn taken;
	void *taken_ctx;
	long long now;
	char *err;
	size_t errlen;
};

static inline bool ex_given(const struct node *n, size_t i)
{
	return i < n->nargs && n->args[i]->kind != N_OMIT;
}

static inline bool ex_literal(const struct node *n)
{
	return n->kind == N_STR || n->kind == N_NUM || n->kind == N_BOOL;
}

/* ---- Messages and conversions (expr.c) ---- */

/* A parse error at column `col`: writes "column N: ..." and returns -EINVAL. */
int ex_perr_col(struct parser *p, unsigned col, const char *fmt, ...) PRINTF(3, 4);
/* An evaluation error of call `n`: "column N: Fn: ...", returns -EINVAL. */
int ex_efail(struct ectx *c, const struct node *n, const char *fmt, ...) PRINTF(3, 4);
int ex_parse_ll(const char *s, long long *out);
int ex_parse_bool(const char *s); /* 1 True, 0 False (any case), -1 other */

/* ---- Evaluation helpers (expr.c) ---- */

/* Argument i, all its values (null when omitted or absent). */
int ex_arg_val(struct ectx *c, const struct node *n, size_t i, struct expr_value *out);
/* Argument i where one string is expected: its first value, NULL if null. */
int ex_arg_str(struct ectx *c, const struct node *n, size_t i, char **out);
int ex_arg_int(struct ectx *c, const struct node *n, size_t i, const char *what, long long *out);

/* One-string transformation applied to each value by ex_map_arg. Returns 0,
 * 1 to drop the value (no result for it), or a negative code. */
typedef int (*xform_fn)(struct ectx *c, const struct node *n, const void *arg,
			const char *in, struct sbuf *out);
/* Entra's functions take one string; here they apply to every value of
 * argument `i`, so a multi-valued attribute stays multi-valued and null
 * stays null. */
int ex_map_arg(struct ectx *c, const struct node *n, size_t i, xform_fn f,
	       const void *arg, struct expr_value *out);

/* ---- The function table (expr_funcs.c) ---- */

const struct func *ex_func_find(const char *name, size_t len);

/* ---- Conversions and binary values (expr_binary.c) ---- */

extern const struct func ex_binary_funcs[];
extern const size_t ex_n_binary_funcs;

/* ---- Unicode (expr_unicode.c) ---- */

/* The code point at str (`left` bytes available) in *cp, returning its length;
 * a byte that does not start valid UTF-8 is BAD_CP, length 1. */
size_t ex_utf8_next(const char *str, size_t left, uint32_t *cp);
void ex_utf8_put(struct sbuf *b, uint32_t c);
/* Byte length of the first `k` characters of s[0..len) (all of it if shorter). */
size_t ex_utf8_skip(const char *s, size_t len, long long k);
size_t ex_utf8_count(const char *s, size_t len);
/* Invariant-culture case mapping, one code point for one. */
void ex_case_map(const char *s, bool upper, struct sbuf *b);
bool ex_is_space(uint32_t c);
void ex_strip_diacritics(const char *s, struct sbuf *b);
/* PCase: lower-case `s`, then upper-case the first letter of every word.
 * `seps` NULL: .NET's TextInfo.ToTitleCase word rules; else the word
 * separators are exactly the characters of `seps`. */
void ex_title_case(const char *s, const char *seps, struct sbuf *b);

/* ---- Regular expressions and Replace (expr_regex.c) ---- */

int ex_check_replace(struct parser *p, struct node *n);
int ex_f_replace(struct ectx *c, const struct node *n, struct expr_value *out);
void ex_rx_free(struct rx *rx);
void ex_rxcache_free(struct rxcache *rc);

/* ---- Dates and times (expr_datetime.c) ---- */

int ex_check_fdt(struct parser *p, struct node *n);
int ex_f_formatdatetime(struct ectx *c, const struct node *n, struct expr_value *out);
/* CDate, DateAdd, DateDiff, DateFromNum, NumFromDate, Now */
extern const struct func ex_date_funcs[];
extern const size_t ex_n_date_funcs;

/* ---- Generated values: RandomString (expr_random.c) ---- */

extern const struct func ex_random_funcs[];
extern const size_t ex_n_random_funcs;

#endif /* CANOPY_SYNC_TRANSFORM_EXPR_IMPL_H */
