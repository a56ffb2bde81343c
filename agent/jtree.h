/* Document trees from JSON or YAML text: parse (strict JSON, or YAML by libyaml), emit, compare. */
#ifndef SHUNT_AGENT_JTREE_H
#define SHUNT_AGENT_JTREE_H

#include <stddef.h>

#include "lib/strbuf.h"

#define JTREE_ERR_MAX	512
#define JTREE_MAX_DEPTH 100	    /* nesting of objects and lists */
#define JTREE_MAX_INPUT (64u << 20) /* bytes of text */
#define JTREE_MAX_NODES (4u << 20)  /* nodes per document */
#define JTREE_PRETTY	(1u << 0)   /* jtree_emit: two-space indent, one member a line */

/* What went wrong and where: msg is complete ("line 3, column 7: ..." for syntax errors); line and
 * column (1-based) are also given apart when known, 0 otherwise. */
struct jtree_err {
	char msg[JTREE_ERR_MAX];
	unsigned line;
	unsigned column;
};

enum jtree_kind {
	JT_NULL,
	JT_BOOL,
	JT_NUMBER, /* text in JSON number syntax, kept as written */
	JT_STRING,
	JT_OBJECT,
	JT_ARRAY,
};

struct jtree_node;

struct jtree_member {
	const char *key; /* NUL-terminated; key_len excludes the NUL and may count inner NULs */
	size_t key_len;
	struct jtree_node *value;
};

/* Nodes belong to their tree and are freed with it. YAML aliases make several parents share a
 * node, so a tree is a DAG: walkers must bound the work they do (see PBJSON_MAX_VISITS). */
struct jtree_node {
	enum jtree_kind kind;
	unsigned line, column;
	size_t len; /* JT_STRING/JT_NUMBER: bytes; JT_ARRAY: items; JT_OBJECT: members */
	union {
		const char *str; /* JT_STRING, JT_NUMBER: NUL-terminated */
		int boolean;
		struct jtree_node **items;
		struct jtree_member *members;
	} u;
};

struct jtree;

/* Parses one JSON value, or one YAML document. Text whose first non-blank character is '{' or
 * '[' is read as JSON first (libyaml rejects some valid JSON, such as surrogate-pair escapes);
 * if that fails and YAML flow syntax accepts it, the YAML reading is used. Plain YAML scalars
 * become null (empty, ~, null), booleans (true/false), numbers (JSON syntax) or strings; quoted
 * ones are strings. Duplicate keys, complex keys, unknown tags and over-limit input are errors.
 * Returns 0 and a tree the caller frees with jtree_free, or -EINVAL (err set) or -ENOMEM. */
int jtree_parse(const char *text, size_t len, struct jtree **out, struct jtree_err *err);
const struct jtree_node *jtree_root(const struct jtree *t);
void jtree_free(struct jtree *t);

/* Member of an object by key, or NULL. */
const struct jtree_node *jtree_get(const struct jtree_node *obj, const char *key);

/* Appends n as JSON; indent is the starting level for JTREE_PRETTY. Returns 0 or out->err,
 * which is -ELOOP if aliases nest the tree deeper than twice JTREE_MAX_DEPTH. */
int jtree_emit(const struct jtree_node *n, unsigned flags, int indent, struct strbuf *out);
/* Appends s as a JSON string literal: quotes, escapes, invalid UTF-8 replaced by U+FFFD. */
int jtree_emit_string(struct strbuf *out, const char *s, size_t len);

/* Compares two values as JSON data: member order is ignored, numbers compare by value, strings
 * byte for byte. Returns 1 if equal; 0 if not, with the path of the first difference and both
 * values appended to where (may be NULL). */
int jtree_equal(const struct jtree_node *a, const struct jtree_node *b, struct strbuf *where);

#endif
