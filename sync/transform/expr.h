/*
 * sync/transform/expr.h -- attribute-mapping expressions, with the syntax and
 * semantics of Microsoft Entra provisioning "expression mappings".
 *
 * A mapping such as
 *     displayName: Join(" ", [givenName], [sn])
 * is parsed once when the configuration is loaded (expr_parse) and then
 * evaluated for every source object (expr_eval). docs/mapping-expressions.md
 * is the user reference: syntax, every function, examples, deviations from
 * Entra.
 *
 * Syntax, in short:
 *     [attrName]              every value of a source attribute (name is
 *                             case-insensitive: the lookup callback matches it)
 *     "text"                  string literal; \" is a quote, \\ a backslash,
 *                             any other backslash is kept as written
 *     42, -1                  number literal (decimal)
 *     true, False             boolean literals (any case), same as "True"/"False"
 *     Name(arg, , arg)        function call, name case-insensitive; an empty
 *                             argument is "omitted" (Entra's Replace needs it)
 *     &HFF                    hexadecimal number literal (VBA's form), 255
 *     a = b, a <> b           comparison, "True" when both lists are equal
 *                             (differ); a < b, a <= b, a > b, a >= b compare
 *                             numbers as numbers, anything else as strings
 *                             (ordinal), and are "False" when a side is null
 *
 * Values. Every value is a list of strings: an attribute reference yields all
 * its values, an empty list is null (absent attribute). Booleans are the
 * strings "True"/"False"; numbers are decimal strings.
 *
 * Regular expressions (Replace) are .NET's syntax, run by PCRE2; case
 * mapping and NormalizeDiacritics use libunistring's Unicode tables.
 *
 * Threads. A parsed `struct expr` is read-only: any number of threads may call
 * expr_eval/expr_attributes on it at once. Its one mutable part, the patterns
 * a Replace computed from the data has compiled, is behind a mutex. Nothing
 * here has global state.
 *
 * Errors. Functions return 0 or a negative errno code (-EINVAL for a bad
 * expression or a value a function cannot use, such as a regular expression
 * that gives up on its backtracking limits, or the lookup callback's own
 * code) and write the cause, NUL-terminated, to the caller's `errmsg`
 * (`errlen` bytes, may be 0). Every message starts with "column N: "
 * (1-based, in characters from the start of the expression), so the config
 * loader only prefixes its file, line and mapping key. Running out of memory
 * aborts (common/xalloc.h).
 */
#ifndef CANOPY_SYNC_TRANSFORM_EXPR_H
#define CANOPY_SYNC_TRANSFORM_EXPR_H

#include <stddef.h>

/* Deepest nesting of calls expr_parse accepts; bounds the recursion of both
 * the parser and the evaluator. */
#define EXPR_MAX_DEPTH 64

/* A parsed expression. Opaque, immutable, shareable across threads. */
struct expr;

/*
 * A value: `n` owned, NUL-terminated UTF-8 strings. n == 0 is null (`v` may
 * then be NULL). Initialise with `struct expr_value v = {0}` and release with
 * expr_value_free.
 */
struct expr_value {
	char **v;
	size_t n;
};

/*
 * Attribute lookup, supplied by the caller of expr_eval.
 *
 * Set `*values` to the `*n` values of attribute `name`, matching the name
 * case-insensitively; an absent attribute is `*n = 0`. The values are
 * borrowed: they need only stay valid until the callback is called again or
 * expr_eval returns (expr_eval copies them at once). Return 0, or a negative
 * errno code to abort the evaluation (expr_eval returns that code).
 */
typedef int (*expr_lookup_fn)(void *ctx, const char *name,
			      const char *const **values, size_t *n);

/*
 * Parse `text` into `*out`. Checks everything that does not depend on the
 * data: syntax, function names, argument counts, Replace's argument forms,
 * and regular expressions given as literals (compiled here, once).
 *
 * Returns 0, or -EINVAL with e.g. "column 12: unknown function 'Joinn'" or
 * "column 1: Left expects 2 arguments, got 3". On error `*out` is NULL.
 */
int expr_parse(const char *text, struct expr **out, char *errmsg, size_t errlen);

/*
 * Evaluate `e` for one object. `lookup` may be NULL: every attribute is then
 * null. `*out` is overwritten (it need not be initialised) and owned by the
 * caller; on error it is left empty ({NULL, 0}).
 *
 * Returns 0; -EINVAL when a function cannot use its input, with a message
 * naming the function and its column, e.g.
 * "column 1: Left: NumChars is not an integer: \"ten\""; or the negative
 * code returned by `lookup`.
 */
int expr_eval(const struct expr *e, expr_lookup_fn lookup, void *ctx,
	      struct expr_value *out, char *errmsg, size_t errlen);

/*
 * SelectUniqueValue's question to the target: is `value` already held by
 * another object? Set *taken and return 0, or a negative errno code to abort
 * the evaluation (expr_eval_env returns it).
 */
typedef int (*expr_taken_fn)(void *ctx, const char *value, int *taken);

/* Everything an evaluation may consult. Zero-initialise, then set fields. */
struct expr_env {
	expr_lookup_fn lookup; /* may be NULL: every attribute is null */
	void *lookup_ctx;
	expr_taken_fn taken;   /* NULL: SelectUniqueValue fails with a message */
	void *taken_ctx;
	long long now;         /* Now(): seconds since 1970 UTC; 0 reads the clock */
};

/* expr_eval with the whole environment. */
int expr_eval_env(const struct expr *e, const struct expr_env *env, struct expr_value *out,
		  char *errmsg, size_t errlen);

/*
 * What an expression does besides reading attributes, for the mapping
 * (docs/mapping-expressions.md, "Values that change at every evaluation",
 * "Redact" and "SelectUniqueValue"):
 *   EXPR_VOLATILE  calls Now() or RandomString(): two evaluations of the same
 *                  object differ, so the value is applied at creation only
 *   EXPR_REDACT    calls Redact(): the value never appears in logs or status
 *   EXPR_UNIQUE    is a SelectUniqueValue(...) (only ever at the top)
 */
enum {
	EXPR_VOLATILE = 1,
	EXPR_REDACT = 2,
	EXPR_UNIQUE = 4,
};
unsigned expr_traits(const struct expr *e);

/* Free the strings of `v` and reset it to null. Accepts NULL and null values. */
void expr_value_free(struct expr_value *v);

/* Free a parsed expression. Accepts NULL. */
void expr_free(struct expr *e);

/*
 * Call `cb` once for each attribute the expression reads, in order of first
 * appearance, de-duplicated case-insensitively (spelling of the first
 * occurrence), so that the LDAP source can request only those attributes.
 * Returns 0, or -EINVAL when `e` or `cb` is NULL.
 */
int expr_attributes(const struct expr *e,
		    void (*cb)(void *ctx, const char *name), void *ctx);

#endif /* CANOPY_SYNC_TRANSFORM_EXPR_H */
