/* A streaming JSON writer over a strbuf: commas and escaping handled, nesting checked. */
#ifndef SHUNT_LIB_JSON_H
#define SHUNT_LIB_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/strbuf.h"

#define JSON_MAX_DEPTH 32

struct json_writer {
	struct strbuf *sb;
	int depth;
	bool need_comma[JSON_MAX_DEPTH];
	bool after_key;
	bool pretty;
};

void jw_init(struct json_writer *w, struct strbuf *sb, bool pretty);
void jw_obj_begin(struct json_writer *w);
void jw_obj_end(struct json_writer *w);
void jw_arr_begin(struct json_writer *w);
void jw_arr_end(struct json_writer *w);
void jw_key(struct json_writer *w, const char *key);
void jw_str(struct json_writer *w, const char *s);
void jw_strn(struct json_writer *w, const char *s, size_t len);
void jw_u64(struct json_writer *w, uint64_t v);
void jw_i64(struct json_writer *w, int64_t v);
void jw_double(struct json_writer *w, double v);
void jw_bool(struct json_writer *w, bool v);
void jw_null(struct json_writer *w);
/* Appends an already-encoded JSON value (e.g. a response from shuntd) in value position. */
void jw_raw(struct json_writer *w, const char *json);
/* Appends s as a JSON string body (no quotes), escaping what JSON requires. */
void json_escape(struct strbuf *sb, const char *s, size_t len);

#endif
