/*
 * sync/transform/expr_random.c -- RandomString(Length, MinimumNumbers,
 * MinimumSpecialCharacters, MinimumCapital, MinimumLowerCase
 * [, CharactersToAvoid]) (docs/mapping-expressions.md, "RandomString").
 *
 * The characters are those of Windows' "password must meet complexity
 * requirements" policy, which Microsoft's reference names: A-Z, a-z, 0-9 and
 * the non-alphanumeric characters ~!@#$%^&*_-+=`|\(){}[]:;"'<>,.?/ . The
 * bytes come from the kernel's CSPRNG (getrandom(2)): the value is usually
 * an initial password.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>

#include "sync/transform/expr_impl.h"

/* Entra: "256 characters max". */
#define RANDOM_MAX_LENGTH 256

static const char *const classes[4] = {
	"0123456789",
	"~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/",
	"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
	"abcdefghijklmnopqrstuvwxyz",
};
static const char *const class_names[4] = {"numbers", "special characters", "capital letters",
					   "lower-case letters"};

/* A uniform number below `bound` (<= 256): rejection sampling, so that no
 * character is likelier than another. */
static int uniform(unsigned bound, unsigned *out)
{
	unsigned limit = 256 - 256 % bound;
	for (;;) {
		unsigned char byte;
		ssize_t k = getrandom(&byte, 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k != 1)
			return -EIO;
		if (byte < limit) {
			*out = byte % bound;
			return 0;
		}
	}
}

/* The characters of class `cls` not in `avoid`. */
static void allowed(int cls, const char *avoid, struct sbuf *b)
{
	for (const char *p = classes[cls]; *p; p++)
		if (!strchr(avoid, *p))
			sb_addc(b, *p);
}

static int pick(struct sbuf *out, const struct sbuf *from)
{
	unsigned i;
	int rc = uniform((unsigned)from->len, &i);
	if (!rc)
		sb_addc(out, from->p[i]);
	return rc;
}

static int f_randomstring(struct ectx *c, const struct node *n, struct expr_value *out)
{
	static const char *const what[5] = {"Length", "MinimumNumbers", "MinimumSpecialCharacters",
					    "MinimumCapital", "MinimumLowerCase"};
	long long v[5], sum = 0;
	char *avoid = NULL;
	struct sbuf set[4] = {{0}}, all = {0}, s = {0};
	int rc = 0;

	for (int i = 0; i < 5 && !rc; i++) {
		rc = ex_arg_int(c, n, (size_t)i, what[i], &v[i]);
		if (!rc && (v[i] < 0 || v[i] > RANDOM_MAX_LENGTH))
			rc = ex_efail(c, n, "%s must be 0 to %d, got %lld", what[i], RANDOM_MAX_LENGTH, v[i]);
		if (i > 0)
			sum += v[i];
	}
	if (!rc && ex_given(n, 5))
		rc = ex_arg_str(c, n, 5, &avoid);
	if (rc)
		goto out;
	if (v[0] < 1 || sum > v[0]) {
		rc = ex_efail(c, n, "Length (%lld) must be 1 or more and at least the sum of the minimums (%lld)",
			      v[0], sum);
		goto out;
	}
	for (int k = 0; k < 4; k++) {
		allowed(k, avoid ? avoid : "", &set[k]);
		if (set[k].len)
			sb_addn(&all, set[k].p, set[k].len);
		if (v[k + 1] > 0 && set[k].len == 0) {
			rc = ex_efail(c, n, "CharactersToAvoid excludes every one of the %s, but %s is %lld",
				      class_names[k], what[k + 1], v[k + 1]);
			goto out;
		}
	}
	if (all.len == 0) {
		rc = ex_efail(c, n, "CharactersToAvoid excludes every character");
		goto out;
	}
	/* The minimums first, the rest from every class, then a Fisher-Yates
	 * shuffle so that the classes do not sit in order. */
	for (int k = 0; k < 4 && !rc; k++)
		for (long long i = 0; i < v[k + 1] && !rc; i++)
			rc = pick(&s, &set[k]);
	while (!rc && (long long)s.len < v[0])
		rc = pick(&s, &all);
	for (size_t i = s.len; !rc && i > 1; i--) {
		unsigned j;
		if (!(rc = uniform((unsigned)i, &j))) {
			char t = s.p[i - 1];
			s.p[i - 1] = s.p[j];
			s.p[j] = t;
		}
	}
	if (rc)
		rc = ex_efail(c, n, "the system's random number generator failed");
	else
		ex_vpush(out, sb_take(&s));
out:
	for (int k = 0; k < 4; k++)
		sb_free(&set[k]);
	sb_free(&all);
	sb_free(&s);
	free(avoid);
	return rc;
}

static int check_randomstring(struct parser *p, struct node *n)
{
	long long v[5], sum = 0;
	for (size_t i = 0; i < 5; i++) {
		if (n->args[i]->kind != N_NUM || ex_parse_ll(n->args[i]->text, &v[i]))
			return 0; /* computed: checked when evaluated */
		if (v[i] < 0 || v[i] > RANDOM_MAX_LENGTH)
			return ex_perr_col(p, n->args[i]->col, "RandomString: argument %zu must be 0 to %d, got %lld",
					   i + 1, RANDOM_MAX_LENGTH, v[i]);
		if (i > 0)
			sum += v[i];
	}
	if (v[0] < 1 || sum > v[0])
		return ex_perr_col(p, n->col, "RandomString: Length (%lld) must be 1 or more and at least the sum "
				   "of the minimums (%lld)", v[0], sum);
	return 0;
}

const struct func ex_random_funcs[] = {
	{"RandomString", 5, 6, 0x1f, check_randomstring, f_randomstring, EXPR_VOLATILE},
};
const size_t ex_n_random_funcs = sizeof ex_random_funcs / sizeof ex_random_funcs[0];
