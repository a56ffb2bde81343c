/* Streaming JSON writer: each value call places the separator the position needs. */
#include "lib/json.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void jw_init(struct json_writer *w, struct strbuf *sb, bool pretty)
{
	memset(w, 0, sizeof(*w));
	w->sb = sb;
	w->pretty = pretty;
}

static void indent(struct json_writer *w)
{
	if (!w->pretty)
		return;
	strbuf_addc(w->sb, '\n');
	for (int i = 0; i < w->depth; i++)
		strbuf_adds(w->sb, "  ");
}

/* Before any value or key: a comma after a sibling, a newline when pretty. */
static void before_value(struct json_writer *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (w->need_comma[w->depth])
			strbuf_addc(w->sb, ',');
		w->need_comma[w->depth] = true;
		indent(w);
	}
}

static void open_scope(struct json_writer *w, char c)
{
	before_value(w);
	strbuf_addc(w->sb, c);
	if (w->depth < JSON_MAX_DEPTH - 1)
		w->depth++;
	w->need_comma[w->depth] = false;
}

static void close_scope(struct json_writer *w, char c)
{
	bool had_members = w->need_comma[w->depth];

	if (w->depth > 0)
		w->depth--;
	if (had_members)
		indent(w);
	strbuf_addc(w->sb, c);
}

void jw_obj_begin(struct json_writer *w)
{
	open_scope(w, '{');
}

void jw_obj_end(struct json_writer *w)
{
	close_scope(w, '}');
}

void jw_arr_begin(struct json_writer *w)
{
	open_scope(w, '[');
}

void jw_arr_end(struct json_writer *w)
{
	close_scope(w, ']');
}

void json_escape(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':
			strbuf_adds(sb, "\\\"");
			break;
		case '\\':
			strbuf_adds(sb, "\\\\");
			break;
		case '\n':
			strbuf_adds(sb, "\\n");
			break;
		case '\r':
			strbuf_adds(sb, "\\r");
			break;
		case '\t':
			strbuf_adds(sb, "\\t");
			break;
		default:
			if (c < 0x20) {
				char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

				strbuf_add(sb, u, sizeof(u));
			} else {
				strbuf_addc(sb, (char)c);
			}
		}
	}
}

void jw_key(struct json_writer *w, const char *key)
{
	before_value(w);
	strbuf_addc(w->sb, '"');
	json_escape(w->sb, key, strlen(key));
	strbuf_adds(w->sb, w->pretty ? "\": " : "\":");
	w->after_key = true;
}

void jw_strn(struct json_writer *w, const char *s, size_t len)
{
	before_value(w);
	strbuf_addc(w->sb, '"');
	json_escape(w->sb, s, len);
	strbuf_addc(w->sb, '"');
}

void jw_str(struct json_writer *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

void jw_u64(struct json_writer *w, uint64_t v)
{
	before_value(w);
	strbuf_addf(w->sb, "%" PRIu64, v);
}

void jw_i64(struct json_writer *w, int64_t v)
{
	before_value(w);
	strbuf_addf(w->sb, "%" PRId64, v);
}

void jw_double(struct json_writer *w, double v)
{
	before_value(w);
	if (isfinite(v))
		strbuf_addf(w->sb, "%.17g", v);
	else
		strbuf_adds(w->sb, "null");
}

void jw_bool(struct json_writer *w, bool v)
{
	before_value(w);
	strbuf_adds(w->sb, v ? "true" : "false");
}

void jw_null(struct json_writer *w)
{
	before_value(w);
	strbuf_adds(w->sb, "null");
}

void jw_raw(struct json_writer *w, const char *json)
{
	size_t len = strlen(json);

	while (len && (json[len - 1] == '\n' || json[len - 1] == ' '))
		len--;
	before_value(w);
	strbuf_add(w->sb, json, len);
}
