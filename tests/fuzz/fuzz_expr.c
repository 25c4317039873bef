/*
 * tests/fuzz/fuzz_expr.c -- mapping expressions (sync/transform/expr.c):
 * parse any text and evaluate what parses against a small fixed object,
 * with single-, multi- and no-valued attributes, and binary attributes as
 * the AD source gives them (base64; GUIDs as text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/transform/expr.h"

static const char *const uid[] = {"jdoe"};
static const char *const mail[] = {"John.Doe@Example.com", "jd@example.org"};
static const char *const cn[] = {"John Doe", "", "Jöhn Dœ"};
static const char *const num[] = {"42"};
static const char *const sid[] = {"AQUAAAAAAAUVAAAAx/f+13x3VciUWs4B9QMAAA==", "AQIAAAAAAAUgAAAAIAIAAA=="};
static const char *const guid[] = {"6f9619ff-8b86-d011-b42d-00c04fc964ff"};

static int lookup(void *ctx, const char *name, const char *const **values, size_t *n)
{
	(void)ctx;
	*n = 0;
	if (strcasecmp(name, "uid") == 0)
		*values = uid, *n = 1;
	else if (strcasecmp(name, "mail") == 0)
		*values = mail, *n = 2;
	else if (strcasecmp(name, "cn") == 0)
		*values = cn, *n = 3;
	else if (strcasecmp(name, "uidNumber") == 0)
		*values = num, *n = 1;
	else if (strcasecmp(name, "objectSid") == 0)
		*values = sid, *n = 2;
	else if (strcasecmp(name, "objectGUID") == 0)
		*values = guid, *n = 1;
	return 0;
}

/* SelectUniqueValue's target: "jdoe" is taken. */
static int taken(void *ctx, const char *value, int *is)
{
	(void)ctx;
	*is = strcmp(value, "jdoe") == 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expr *e = NULL;
	struct expr_value v;
	char err[256], *text;

	if (size > 4096)
		return 0; /* mapping lines are at most 1 KiB in a configuration */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (expr_parse(text, &e, err, sizeof err) == 0) {
		/* a fixed Now(): the same input takes the same path */
		struct expr_env env = {.lookup = lookup, .taken = taken, .now = 1625240018};
		if (expr_eval_env(e, &env, &v, err, sizeof err) == 0)
			expr_value_free(&v);
		if (expr_eval(e, NULL, NULL, &v, err, sizeof err) == 0)
			expr_value_free(&v);
		expr_free(e);
	}
	free(text);
	return 0;
}
