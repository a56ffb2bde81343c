/* Tests lib/json.c and lib/strbuf.c: separators, nesting, escaping, raw values, growth. */
#include "lib/json.h"
#include "tests/lib/tap.h"

int main(void)
{
	struct strbuf sb = {0};
	struct json_writer w;

	jw_init(&w, &sb, false);
	jw_obj_begin(&w);
	jw_key(&w, "a");
	jw_u64(&w, 1);
	jw_key(&w, "b");
	jw_arr_begin(&w);
	jw_str(&w, "x");
	jw_i64(&w, -2);
	jw_bool(&w, true);
	jw_null(&w);
	jw_arr_end(&w);
	jw_key(&w, "c");
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_key(&w, "d");
	jw_raw(&w, "{\"k\":[1,2]}\n");
	jw_key(&w, "e");
	jw_str(&w, NULL);
	jw_obj_end(&w);
	is_str(strbuf_str(&sb),
	       "{\"a\":1,\"b\":[\"x\",-2,true,null],\"c\":{},\"d\":{\"k\":[1,2]},\"e\":null}",
	       "compact object: commas, nesting, raw value, null string");

	strbuf_reset(&sb);
	jw_init(&w, &sb, false);
	jw_str(&w, "q\"b\\s\n\r\t\x01\x1f/é");
	is_str(strbuf_str(&sb), "\"q\\\"b\\\\s\\n\\r\\t\\u0001\\u001f/é\"",
	       "escaping: quotes, backslash, control characters; UTF-8 passes through");

	strbuf_reset(&sb);
	jw_init(&w, &sb, true);
	jw_obj_begin(&w);
	jw_key(&w, "k");
	jw_arr_begin(&w);
	jw_u64(&w, 1);
	jw_arr_end(&w);
	jw_obj_end(&w);
	is_str(strbuf_str(&sb), "{\n  \"k\": [\n    1\n  ]\n}",
	       "pretty printing indents two spaces");

	strbuf_reset(&sb);
	jw_init(&w, &sb, false);
	jw_double(&w, 0.5);
	jw_double(&w, 1.0 / 0.0);
	is_str(strbuf_str(&sb), "0.5null", "doubles; infinity becomes null");

	strbuf_reset(&sb);
	for (int i = 0; i < 10000; i++)
		strbuf_addf(&sb, "%04d", i % 10000);
	is_int(sb.len, 40000, "strbuf grows past many doublings");
	ok(!sb.err && sb.buf[40000] == '\0', "and stays NUL-terminated");
	strbuf_release(&sb);
	is_str(strbuf_str(&sb), "", "a freed strbuf reads as empty");
	return done_testing();
}
