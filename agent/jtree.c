/* Document trees: an arena per tree, a strict JSON parser, a libyaml event loader, an emitter. */
#include "agent/jtree.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define ARENA_CHUNK  (64u << 10)
#define ARENA_ALIGN  8u
#define VEC_MIN_CAP  8u
#define MAX_ANCHORS  1024u
#define UTF8_REPLACE "\xef\xbf\xbd"

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct jtree {
	struct arena_chunk *chunks;
	struct jtree_node *root;
	size_t nodes;
};

/* ---- arena ---------------------------------------------------------------------------------- */

static void *arena_alloc(struct jtree *t, size_t size)
{
	struct arena_chunk *c = t->chunks;
	size_t cap;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (!c || c->cap - c->used < size) {
		cap = size > ARENA_CHUNK / 4 ? size : ARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		/* A big block goes behind the current chunk so the current one keeps filling. */
		if (size > ARENA_CHUNK / 4 && t->chunks) {
			c->next = t->chunks->next;
			t->chunks->next = c;
		} else {
			c->next = t->chunks;
			t->chunks = c;
		}
	}
	c->used += size;
	return c->data + c->used - size;
}

static char *arena_strndup(struct jtree *t, const char *s, size_t len)
{
	char *p = arena_alloc(t, len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void jtree_free(struct jtree *t)
{
	struct arena_chunk *c, *next;

	if (!t)
		return;
	for (c = t->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	free(t);
}

const struct jtree_node *jtree_root(const struct jtree *t)
{
	return t->root;
}

static void set_err(struct jtree_err *err, unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set_err(struct jtree_err *err, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	err->line = line;
	err->column = col;
	if (line)
		n = snprintf(err->msg, sizeof(err->msg), "line %u, column %u: ", line, col);
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

static struct jtree_node *node_new(struct jtree *t, enum jtree_kind kind, unsigned line,
				   unsigned col)
{
	struct jtree_node *n;

	if (t->nodes >= JTREE_MAX_NODES)
		return NULL;
	n = arena_alloc(t, sizeof(*n));
	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->line = line;
	n->column = col;
	t->nodes++;
	return n;
}

/* ---- temporary vectors for collections being built ------------------------------------------ */

struct vec {
	void *v;
	size_t n, cap, size;
};

static int vec_push(struct vec *v, const void *item)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : VEC_MIN_CAP;
		void *p = realloc(v->v, cap * v->size);

		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	memcpy((char *)v->v + v->n * v->size, item, v->size);
	v->n++;
	return 0;
}

static int member_cmp(const void *a, const void *b)
{
	const struct jtree_member *x = *(const struct jtree_member *const *)a;
	const struct jtree_member *y = *(const struct jtree_member *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* Moves the collected members or items into the arena; for objects, rejects a repeated key
 * (returns its member through dup). */
static int vec_finish(struct jtree *t, struct vec *v, struct jtree_node *n,
		      const struct jtree_member **dup)
{
	size_t bytes = v->n * v->size;
	void *p = NULL;

	*dup = NULL;
	if (bytes) {
		p = arena_alloc(t, bytes);
		if (!p)
			return -ENOMEM;
		memcpy(p, v->v, bytes);
	}
	n->len = v->n;
	if (n->kind == JT_ARRAY) {
		n->u.items = p;
		return 0;
	}
	n->u.members = p;
	if (v->n > 1) {
		const struct jtree_member **sorted = malloc(v->n * sizeof(*sorted));

		if (!sorted)
			return -ENOMEM;
		for (size_t i = 0; i < v->n; i++)
			sorted[i] = &n->u.members[i];
		qsort(sorted, v->n, sizeof(*sorted), member_cmp);
		for (size_t i = 1; i < v->n && !*dup; i++)
			if (member_cmp(&sorted[i - 1], &sorted[i]) == 0)
				*dup = sorted[i];
		free(sorted);
	}
	return *dup ? -EINVAL : 0;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

struct jparse {
	struct jtree *t;
	const char *s, *end, *p;
	const char *line_start;
	unsigned line;
	int depth;
	int yamlish; /* failed where YAML flow syntax may go on: a bare key or value */
	struct jtree_err *err;
};

static unsigned jp_col(const struct jparse *jp)
{
	return (unsigned)(jp->p - jp->line_start) + 1;
}

static int jp_fail(struct jparse *jp, const char *what)
{
	if (jp->p >= jp->end)
		set_err(jp->err, jp->line, jp_col(jp), "%s, got end of input", what);
	else
		set_err(jp->err, jp->line, jp_col(jp), "%s", what);
	return -EINVAL;
}

static int jp_nomem(struct jparse *jp)
{
	set_err(jp->err, jp->line, jp_col(jp), "out of memory (or more than %u nodes)",
		JTREE_MAX_NODES);
	return -ENOMEM;
}

static void jp_skip_ws(struct jparse *jp)
{
	while (jp->p < jp->end) {
		char c = *jp->p;

		if (c == '\n') {
			jp->line++;
			jp->line_start = jp->p + 1;
		} else if (c != ' ' && c != '\t' && c != '\r') {
			break;
		}
		jp->p++;
	}
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* Reads a string literal at jp->p (the opening quote) into the arena. */
static int jp_string(struct jparse *jp, const char **out, size_t *out_len)
{
	const char *p = jp->p + 1;
	char *buf, *w;
	size_t max = 0;

	/* Decoded text is never longer than the literal. */
	for (const char *q = p; q < jp->end && *q != '"'; q++, max++)
		if (*q == '\\' && q + 1 < jp->end)
			q++, max++;
	buf = arena_alloc(jp->t, max + 1);
	if (!buf)
		return jp_nomem(jp);
	w = buf;
	for (;;) {
		unsigned char c;

		if (p >= jp->end) {
			jp->p = p;
			return jp_fail(jp, "unterminated string");
		}
		c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c < 0x20) {
			jp->p = p;
			return jp_fail(jp, "control character in string (escape it)");
		}
		if (c == '\\') {
			unsigned cp, lo;

			if (p + 1 >= jp->end) {
				jp->p = p;
				return jp_fail(jp, "unterminated string");
			}
			switch (p[1]) {
			case '"':
			case '\\':
			case '/':
				*w++ = p[1];
				break;
			case 'b':
				*w++ = '\b';
				break;
			case 'f':
				*w++ = '\f';
				break;
			case 'n':
				*w++ = '\n';
				break;
			case 'r':
				*w++ = '\r';
				break;
			case 't':
				*w++ = '\t';
				break;
			case 'u':
				if (jp->end - p < 6 || hex4(p + 2, &cp)) {
					jp->p = p;
					return jp_fail(jp, "bad \\u escape (want 4 hex digits)");
				}
				if (cp >= 0xdc00 && cp <= 0xdfff) {
					jp->p = p;
					return jp_fail(jp,
						       "unpaired UTF-16 surrogate in \\u escape");
				}
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (jp->end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
					    hex4(p + 8, &lo) || lo < 0xdc00 || lo > 0xdfff) {
						jp->p = p;
						return jp_fail(
							jp,
							"unpaired UTF-16 surrogate in \\u escape");
					}
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
				w += utf8_put(w, cp);
				p += 4;
				break;
			default:
				jp->p = p;
				return jp_fail(jp, "unknown escape in string");
			}
			p += 2;
			continue;
		}
		if (c < 0x80) {
			*w++ = (char)c;
			p++;
			continue;
		}
		{
			size_t n = utf8_len((const unsigned char *)p, (size_t)(jp->end - p));

			if (!n) {
				jp->p = p;
				return jp_fail(jp, "invalid UTF-8 in string");
			}
			memcpy(w, p, n);
			w += n;
			p += n;
		}
	}
	*w = '\0';
	*out = buf;
	*out_len = (size_t)(w - buf);
	jp->p = p + 1;
	return 0;
}

/* Length of a JSON number at s, or 0 if there is none. */
static size_t json_number_len(const char *s, size_t avail)
{
	size_t i = 0;

	if (i < avail && s[i] == '-')
		i++;
	if (i >= avail)
		return 0;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < avail && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		return 0;
	}
	if (i < avail && s[i] == '.') {
		size_t d = ++i;

		while (i < avail && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < avail && (s[i] == 'e' || s[i] == 'E')) {
		size_t d;

		i++;
		if (i < avail && (s[i] == '+' || s[i] == '-'))
			i++;
		d = i;
		while (i < avail && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i;
}

static int jp_value(struct jparse *jp, struct jtree_node **out);

static int jp_collection(struct jparse *jp, struct jtree_node *n)
{
	int is_obj = n->kind == JT_OBJECT;
	char close = is_obj ? '}' : ']';
	struct vec v = {.size = is_obj ? sizeof(struct jtree_member) : sizeof(struct jtree_node *)};
	const struct jtree_member *dup;
	int rc;

	if (++jp->depth > JTREE_MAX_DEPTH) {
		set_err(jp->err, n->line, n->column, "nested deeper than %d levels",
			JTREE_MAX_DEPTH);
		return -EINVAL;
	}
	jp->p++;
	jp_skip_ws(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		goto done;
	}
	for (;;) {
		struct jtree_member m = {0};
		struct jtree_node *item;

		jp_skip_ws(jp);
		if (is_obj) {
			if (jp->p >= jp->end || *jp->p != '"') {
				jp->yamlish = 1;
				rc = jp_fail(jp, "expected a string key");
				goto out;
			}
			rc = jp_string(jp, &m.key, &m.key_len);
			if (rc)
				goto out;
			jp_skip_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				rc = jp_fail(jp, "expected ':' after an object key");
				goto out;
			}
			jp->p++;
		}
		rc = jp_value(jp, &item);
		if (rc)
			goto out;
		m.value = item;
		rc = is_obj ? vec_push(&v, &m) : vec_push(&v, &item);
		if (rc) {
			rc = jp_nomem(jp);
			goto out;
		}
		jp_skip_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			break;
		}
		rc = jp_fail(jp, is_obj ? "expected ',' or '}' after an object member"
					: "expected ',' or ']' after a list item");
		goto out;
	}
done:
	rc = vec_finish(jp->t, &v, n, &dup);
	if (rc == -ENOMEM)
		rc = jp_nomem(jp);
	else if (rc)
		set_err(jp->err, dup->value->line, dup->value->column, "duplicate key \"%s\"",
			dup->key);
out:
	free(v.v);
	jp->depth--;
	return rc;
}

static int jp_value(struct jparse *jp, struct jtree_node **out)
{
	struct jtree_node *n;
	size_t len;
	char c;

	jp_skip_ws(jp);
	if (jp->p >= jp->end)
		return jp_fail(jp, "expected a value");
	c = *jp->p;
	n = node_new(jp->t, JT_NULL, jp->line, jp_col(jp));
	if (!n)
		return jp_nomem(jp);
	*out = n;
	switch (c) {
	case '{':
		n->kind = JT_OBJECT;
		return jp_collection(jp, n);
	case '[':
		n->kind = JT_ARRAY;
		return jp_collection(jp, n);
	case '"':
		n->kind = JT_STRING;
		return jp_string(jp, &n->u.str, &n->len);
	}
	len = (size_t)(jp->end - jp->p);
	if (len >= 4 && memcmp(jp->p, "null", 4) == 0) {
		jp->p += 4;
		return 0;
	}
	if (len >= 4 && memcmp(jp->p, "true", 4) == 0) {
		n->kind = JT_BOOL;
		n->u.boolean = 1;
		jp->p += 4;
		return 0;
	}
	if (len >= 5 && memcmp(jp->p, "false", 5) == 0) {
		n->kind = JT_BOOL;
		jp->p += 5;
		return 0;
	}
	len = json_number_len(jp->p, len);
	if (!len) {
		jp->yamlish = 1;
		return jp_fail(jp, "expected a value");
	}
	n->kind = JT_NUMBER;
	n->len = len;
	n->u.str = arena_strndup(jp->t, jp->p, len);
	if (!n->u.str)
		return jp_nomem(jp);
	jp->p += len;
	return 0;
}

static int json_parse(struct jtree *t, const char *text, size_t len, struct jtree_err *err,
		      int *yamlish)
{
	struct jparse jp = {.t = t,
			    .s = text,
			    .end = text + len,
			    .p = text,
			    .line_start = text,
			    .line = 1,
			    .err = err};
	int rc;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		jp.p = jp.line_start = text + 3;
	rc = jp_value(&jp, &t->root);
	*yamlish = jp.yamlish;
	if (rc)
		return rc;
	jp_skip_ws(&jp);
	if (jp.p < jp.end)
		return jp_fail(&jp, "unexpected text after the JSON value");
	return 0;
}

/* ---- YAML ----------------------------------------------------------------------------------- */

struct yframe {
	struct jtree_node *node;
	struct vec v;
	const char *anchor; /* arena copy; registered when the collection ends */
	int have_key;	    /* mappings: a key is waiting for its value */
	struct jtree_member pending;
};

struct yanchor {
	const char *name;
	struct jtree_node *node;
};

struct yload {
	struct jtree *t;
	struct jtree_err *err;
	struct yframe stack[JTREE_MAX_DEPTH + 1];
	int depth;
	struct yanchor *anchors;
	size_t nanchors;
	int docs;
};

static int is_null_word(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static int bool_word(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

#define YAML_TAG "tag:yaml.org,2002:"

/* Gives a scalar its kind from its style and tag, as Envoy's YAML reading does. */
static int y_classify(struct yload *yl, struct jtree_node *n, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t len = ev->data.scalar.length;

	n->kind = JT_STRING;
	if (tag && strcmp(tag, "!") != 0) {
		if (strncmp(tag, YAML_TAG, strlen(YAML_TAG)) != 0) {
			set_err(yl->err, n->line, n->column, "unsupported YAML tag %s", tag);
			return -EINVAL;
		}
		tag += strlen(YAML_TAG);
		if (!strcmp(tag, "str"))
			return 0;
		if (!strcmp(tag, "null") && is_null_word(s)) {
			n->kind = JT_NULL;
			return 0;
		}
		if (!strcmp(tag, "bool") && bool_word(s) >= 0) {
			n->kind = JT_BOOL;
			n->u.boolean = bool_word(s);
			return 0;
		}
		if ((!strcmp(tag, "int") || !strcmp(tag, "float")) && len &&
		    json_number_len(s, len) == len) {
			n->kind = JT_NUMBER;
			return 0;
		}
		set_err(yl->err, n->line, n->column, "\"%.64s\" is not a valid !!%s", s, tag);
		return -EINVAL;
	}
	if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	if (is_null_word(s)) {
		n->kind = JT_NULL;
	} else if (bool_word(s) >= 0) {
		n->kind = JT_BOOL;
		n->u.boolean = bool_word(s);
	} else if (json_number_len(s, len) == len) {
		n->kind = JT_NUMBER;
	}
	return 0;
}

static int y_nomem(struct yload *yl)
{
	set_err(yl->err, 0, 0, "out of memory (or more than %u nodes)", JTREE_MAX_NODES);
	return -ENOMEM;
}

static int y_add_anchor(struct yload *yl, const char *name, struct jtree_node *n)
{
	if (yl->nanchors >= MAX_ANCHORS) {
		set_err(yl->err, n->line, n->column, "more than %u YAML anchors", MAX_ANCHORS);
		return -EINVAL;
	}
	if (!yl->anchors) {
		yl->anchors = calloc(MAX_ANCHORS, sizeof(*yl->anchors));
		if (!yl->anchors)
			return y_nomem(yl);
	}
	yl->anchors[yl->nanchors].name = name;
	yl->anchors[yl->nanchors].node = n;
	yl->nanchors++;
	return 0;
}

/* Hands a finished node to its parent (or makes it the root). */
static int y_attach(struct yload *yl, struct jtree_node *n, unsigned kline, unsigned kcol)
{
	struct yframe *f;

	if (yl->depth == 0) {
		yl->t->root = n;
		return 0;
	}
	f = &yl->stack[yl->depth - 1];
	if (f->node->kind == JT_ARRAY)
		return vec_push(&f->v, &n) ? y_nomem(yl) : 0;
	if (!f->have_key) {
		if (n->kind == JT_OBJECT || n->kind == JT_ARRAY) {
			set_err(yl->err, kline, kcol, "a mapping key must be a scalar");
			return -EINVAL;
		}
		f->pending.key = n->u.str;
		f->pending.key_len = n->len;
		f->have_key = 1;
		return 0;
	}
	f->pending.value = n;
	f->have_key = 0;
	return vec_push(&f->v, &f->pending) ? y_nomem(yl) : 0;
}

static int y_event(struct yload *yl, yaml_event_t *ev)
{
	unsigned line = (unsigned)ev->start_mark.line + 1,
		 col = (unsigned)ev->start_mark.column + 1;
	struct jtree_node *n;
	const yaml_char_t *anchor = NULL;
	const struct jtree_member *dup;
	struct yframe *f;
	int rc;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++yl->docs > 1) {
			set_err(yl->err, line, col, "more than one YAML document");
			return -EINVAL;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		for (size_t i = yl->nanchors; i-- > 0;)
			if (!strcmp(yl->anchors[i].name, (const char *)ev->data.alias.anchor))
				return y_attach(yl, yl->anchors[i].node, line, col);
		set_err(yl->err, line, col, "unknown YAML anchor *%s", ev->data.alias.anchor);
		return -EINVAL;
	case YAML_SCALAR_EVENT:
		n = node_new(yl->t, JT_STRING, line, col);
		if (!n)
			return y_nomem(yl);
		n->len = ev->data.scalar.length;
		n->u.str = arena_strndup(yl->t, (const char *)ev->data.scalar.value, n->len);
		if (!n->u.str)
			return y_nomem(yl);
		/* Keys are text whatever they look like ("80", "true"); values get a kind. */
		f = yl->depth ? &yl->stack[yl->depth - 1] : NULL;
		if (!f || f->node->kind != JT_OBJECT || f->have_key) {
			rc = y_classify(yl, n, ev);
			if (rc)
				return rc;
			if (n->kind == JT_NULL)
				n->u.str = NULL, n->len = 0;
		}
		if (ev->data.scalar.anchor) {
			const char *a = arena_strndup(yl->t, (const char *)ev->data.scalar.anchor,
						      strlen((const char *)ev->data.scalar.anchor));

			if (!a)
				return y_nomem(yl);
			rc = y_add_anchor(yl, a, n);
			if (rc)
				return rc;
		}
		return y_attach(yl, n, line, col);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (yl->depth >= JTREE_MAX_DEPTH) {
			set_err(yl->err, line, col, "nested deeper than %d levels",
				JTREE_MAX_DEPTH);
			return -EINVAL;
		}
		n = node_new(yl->t, ev->type == YAML_MAPPING_START_EVENT ? JT_OBJECT : JT_ARRAY,
			     line, col);
		if (!n)
			return y_nomem(yl);
		f = &yl->stack[yl->depth++];
		memset(f, 0, sizeof(*f));
		f->node = n;
		f->v.size = n->kind == JT_OBJECT ? sizeof(struct jtree_member)
						 : sizeof(struct jtree_node *);
		anchor = ev->type == YAML_MAPPING_START_EVENT ? ev->data.mapping_start.anchor
							      : ev->data.sequence_start.anchor;
		if (anchor) {
			f->anchor = arena_strndup(yl->t, (const char *)anchor,
						  strlen((const char *)anchor));
			if (!f->anchor)
				return y_nomem(yl);
		}
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		f = &yl->stack[yl->depth - 1];
		n = f->node;
		rc = vec_finish(yl->t, &f->v, n, &dup);
		free(f->v.v);
		f->v.v = NULL;
		yl->depth--;
		if (rc == -ENOMEM)
			return y_nomem(yl);
		if (rc) {
			set_err(yl->err, dup->value->line, dup->value->column,
				"duplicate key \"%s\"", dup->key);
			return rc;
		}
		if (f->anchor) {
			rc = y_add_anchor(yl, f->anchor, n);
			if (rc)
				return rc;
		}
		return y_attach(yl, n, n->line, n->column);
	default:
		return 0;
	}
}

static int yaml_load(struct jtree *t, const char *text, size_t len, struct jtree_err *err)
{
	struct yload yl = {.t = t, .err = err};
	yaml_parser_t parser;
	yaml_event_t ev;
	int rc = 0, done = 0;

	if (!yaml_parser_initialize(&parser))
		return y_nomem(&yl);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && !rc) {
		if (!yaml_parser_parse(&parser, &ev)) {
			if (parser.error == YAML_MEMORY_ERROR) {
				rc = y_nomem(&yl);
				break;
			}
			set_err(err, (unsigned)parser.problem_mark.line + 1,
				(unsigned)parser.problem_mark.column + 1, "%s%s%s%s",
				parser.problem ? parser.problem : "YAML syntax error",
				parser.context ? " (" : "", parser.context ? parser.context : "",
				parser.context ? ")" : "");
			rc = -EINVAL;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		rc = y_event(&yl, &ev);
		yaml_event_delete(&ev);
	}
	for (int i = 0; i < yl.depth; i++)
		free(yl.stack[i].v.v);
	free(yl.anchors);
	yaml_parser_delete(&parser);
	if (!rc && !t->root) {
		set_err(err, 0, 0, "empty document");
		rc = -EINVAL;
	}
	return rc;
}

/* ---- parse entry ---------------------------------------------------------------------------- */

static int looks_like_json(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		return c == '{' || c == '[';
	}
	return 0;
}

static void tree_clear(struct jtree *t)
{
	struct arena_chunk *c, *next;

	for (c = t->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	memset(t, 0, sizeof(*t));
}

int jtree_parse(const char *text, size_t len, struct jtree **out, struct jtree_err *err)
{
	struct jtree *t;
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (len > JTREE_MAX_INPUT) {
		set_err(err, 0, 0, "document larger than %u bytes", JTREE_MAX_INPUT);
		return -EINVAL;
	}
	if (memchr(text, '\0', len)) {
		set_err(err, 0, 0, "document contains a NUL byte");
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		set_err(err, 0, 0, "out of memory");
		return -ENOMEM;
	}
	if (looks_like_json(text, len)) {
		int yamlish = 0;

		rc = json_parse(t, text, len, err, &yamlish);
		if (rc == -EINVAL) {
			/* Not JSON: YAML flow style ({a: 1}) may still read it. If neither does,
			 * the JSON error stands unless JSON stopped at YAML-only syntax. */
			struct jtree_err yerr;

			tree_clear(t);
			rc = yaml_load(t, text, len, &yerr);
			if (rc == 0)
				memset(err, 0, sizeof(*err));
			else if (yamlish)
				*err = yerr;
		}
	} else {
		rc = yaml_load(t, text, len, err);
	}
	if (rc) {
		jtree_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

const struct jtree_node *jtree_get(const struct jtree_node *obj, const char *key)
{
	if (!obj || obj->kind != JT_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->len; i++)
		if (!strcmp(obj->u.members[i].key, key))
			return obj->u.members[i].value;
	return NULL;
}

/* ---- emit ----------------------------------------------------------------------------------- */

int jtree_emit_string(struct strbuf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run = 0;

	strbuf_addc(out, '"');
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t n = 1;
		const char *esc = NULL;
		char ubuf[7];

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			n = utf8_len((const unsigned char *)s + i, len - i);
			if (n) {
				i += n;
				continue;
			}
			n = 1;
			esc = UTF8_REPLACE;
		} else if (c == '"') {
			esc = "\\\"";
		} else if (c == '\\') {
			esc = "\\\\";
		} else if (c == '\n') {
			esc = "\\n";
		} else if (c == '\t') {
			esc = "\\t";
		} else if (c == '\r') {
			esc = "\\r";
		} else {
			ubuf[0] = '\\', ubuf[1] = 'u', ubuf[2] = '0', ubuf[3] = '0';
			ubuf[4] = hex[c >> 4], ubuf[5] = hex[c & 15], ubuf[6] = '\0';
			esc = ubuf;
		}
		strbuf_add(out, s + run, i - run);
		strbuf_adds(out, esc);
		i += n;
		run = i;
	}
	strbuf_add(out, s + run, i - run);
	return strbuf_addc(out, '"');
}

static void emit_indent(struct strbuf *out, unsigned flags, int indent)
{
	if (!(flags & JTREE_PRETTY))
		return;
	strbuf_addc(out, '\n');
	for (int i = 0; i < indent; i++)
		strbuf_add(out, "  ", 2);
}

static int emit_node(const struct jtree_node *n, unsigned flags, int indent, int depth,
		     struct strbuf *out)
{
	if (depth > JTREE_MAX_DEPTH * 2) {
		if (!out->err)
			out->err = -ELOOP;
		return out->err;
	}
	switch (n->kind) {
	case JT_NULL:
		return strbuf_adds(out, "null");
	case JT_BOOL:
		return strbuf_adds(out, n->u.boolean ? "true" : "false");
	case JT_NUMBER:
		return strbuf_add(out, n->u.str, n->len);
	case JT_STRING:
		return jtree_emit_string(out, n->u.str, n->len);
	case JT_ARRAY:
	case JT_OBJECT:
		break;
	}
	strbuf_addc(out, n->kind == JT_OBJECT ? '{' : '[');
	for (size_t i = 0; i < n->len; i++) {
		if (i)
			strbuf_addc(out, ',');
		emit_indent(out, flags, indent + 1);
		if (n->kind == JT_OBJECT) {
			jtree_emit_string(out, n->u.members[i].key, n->u.members[i].key_len);
			strbuf_adds(out, flags & JTREE_PRETTY ? ": " : ":");
			emit_node(n->u.members[i].value, flags, indent + 1, depth + 1, out);
		} else {
			emit_node(n->u.items[i], flags, indent + 1, depth + 1, out);
		}
	}
	if (n->len)
		emit_indent(out, flags, indent);
	return strbuf_addc(out, n->kind == JT_OBJECT ? '}' : ']');
}

int jtree_emit(const struct jtree_node *n, unsigned flags, int indent, struct strbuf *out)
{
	emit_node(n, flags, indent, 0, out);
	return out->err;
}

/* ---- compare -------------------------------------------------------------------------------- */

static const char *kind_name(enum jtree_kind k)
{
	static const char *const names[] = {"null", "bool", "number", "string", "object", "list"};

	return names[k];
}

static int numbers_equal(const struct jtree_node *a, const struct jtree_node *b)
{
	double x, y;

	if (a->len == b->len && !memcmp(a->u.str, b->u.str, a->len))
		return 1;
	x = strtod(a->u.str, NULL);
	y = strtod(b->u.str, NULL);
	return x == y;
}

static int equal_at(const struct jtree_node *a, const struct jtree_node *b, struct strbuf *path,
		    struct strbuf *where, int depth)
{
	size_t mark = path->len;

	if (depth > JTREE_MAX_DEPTH * 2)
		return 1;
	if (a->kind != b->kind)
		goto differ;
	switch (a->kind) {
	case JT_NULL:
		return 1;
	case JT_BOOL:
		if (a->u.boolean != b->u.boolean)
			goto differ;
		return 1;
	case JT_NUMBER:
		if (!numbers_equal(a, b))
			goto differ;
		return 1;
	case JT_STRING:
		if (a->len != b->len || memcmp(a->u.str, b->u.str, a->len))
			goto differ;
		return 1;
	case JT_ARRAY:
		if (a->len != b->len) {
			strbuf_addf(path, " (%zu items vs %zu)", a->len, b->len);
			goto differ;
		}
		for (size_t i = 0; i < a->len; i++) {
			strbuf_addf(path, "[%zu]", i);
			if (!equal_at(a->u.items[i], b->u.items[i], path, where, depth + 1))
				return 0;
			strbuf_truncate(path, mark);
		}
		return 1;
	case JT_OBJECT:
		for (size_t i = 0; i < a->len; i++) {
			const struct jtree_node *bv = jtree_get(b, a->u.members[i].key);

			strbuf_addf(path, ".%s", a->u.members[i].key);
			if (!bv) {
				strbuf_adds(path, " (only in the first)");
				goto differ;
			}
			if (!equal_at(a->u.members[i].value, bv, path, where, depth + 1))
				return 0;
			strbuf_truncate(path, mark);
		}
		for (size_t i = 0; i < b->len; i++) {
			if (!jtree_get(a, b->u.members[i].key)) {
				strbuf_addf(path, ".%s (only in the second)", b->u.members[i].key);
				goto differ;
			}
		}
		return 1;
	}
differ:
	if (where) {
		strbuf_add(where, path->buf ? path->buf : "", path->len);
		strbuf_adds(where, ": ");
		if (a->kind == b->kind && a->kind != JT_OBJECT && a->kind != JT_ARRAY) {
			jtree_emit(a, 0, 0, where);
			strbuf_adds(where, " vs ");
			jtree_emit(b, 0, 0, where);
		} else {
			strbuf_addf(where, "%s vs %s", kind_name(a->kind), kind_name(b->kind));
		}
	}
	return 0;
}

int jtree_equal(const struct jtree_node *a, const struct jtree_node *b, struct strbuf *where)
{
	struct strbuf path = STRBUF_INIT;
	int eq;

	strbuf_adds(&path, "$");
	eq = equal_at(a, b, &path, where, 0);
	strbuf_release(&path);
	return eq;
}
