/* Proto3 JSON mapping over protobuf-c descriptors: decode a jtree into a message, render back. */
#include "agent/pbjson.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/pbreg.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#define DURATION_MAX_SECONDS 315576000000LL /* +-10000 years, as protobuf defines it */
#define NANOS_PER_SECOND     1000000000
#define TIMESTAMP_MIN	     (-62135596800LL)	/* 0001-01-01T00:00:00Z */
#define TIMESTAMP_MAX	     253402300799LL	/* 9999-12-31T23:59:59Z */
#define SHOWN_TEXT_MAX	     40			/* characters of a bad value quoted in an error */
#define NAME_MAX_LEN	     128		/* field names, for the lowerCamelCase form */
#define MAX_SAFE_DOUBLE_INT  9007199254740992.0 /* 2^53 */

/* Messages with a JSON form of their own. */
enum wkt {
	WKT_NONE,
	WKT_ANY,
	WKT_DURATION,
	WKT_TIMESTAMP,
	WKT_STRUCT,
	WKT_VALUE,
	WKT_LIST,
	WKT_WRAPPER,
};

static const struct {
	const char *name;
	enum wkt kind;
} wkt_names[] = {
	{"google.protobuf.Any", WKT_ANY},
	{"google.protobuf.Duration", WKT_DURATION},
	{"google.protobuf.Timestamp", WKT_TIMESTAMP},
	{"google.protobuf.Struct", WKT_STRUCT},
	{"google.protobuf.Value", WKT_VALUE},
	{"google.protobuf.ListValue", WKT_LIST},
	{"google.protobuf.DoubleValue", WKT_WRAPPER},
	{"google.protobuf.FloatValue", WKT_WRAPPER},
	{"google.protobuf.Int64Value", WKT_WRAPPER},
	{"google.protobuf.UInt64Value", WKT_WRAPPER},
	{"google.protobuf.Int32Value", WKT_WRAPPER},
	{"google.protobuf.UInt32Value", WKT_WRAPPER},
	{"google.protobuf.BoolValue", WKT_WRAPPER},
	{"google.protobuf.StringValue", WKT_WRAPPER},
	{"google.protobuf.BytesValue", WKT_WRAPPER},
};

static enum wkt wkt_of(const ProtobufCMessageDescriptor *d)
{
	if (strncmp(d->name, "google.protobuf.", 16) != 0)
		return WKT_NONE;
	for (size_t i = 0; i < sizeof(wkt_names) / sizeof(wkt_names[0]); i++)
		if (!strcmp(d->name, wkt_names[i].name))
			return wkt_names[i].kind;
	return WKT_NONE;
}

static int is_null_value_enum(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_ENUM &&
	       f->descriptor == &google__protobuf__null_value__descriptor;
}

#define MEMBER(m, off) ((void *)((char *)(m) + (off)))

/* ---- names ---------------------------------------------------------------------------------- */

/* protoc's json_name: drop each '_' and upper-case the letter after it. */
static int json_name_eq(const char *name, const char *key)
{
	int up = 0;

	for (; *name; name++) {
		char c = *name;

		if (c == '_') {
			up = 1;
			continue;
		}
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		up = 0;
		if (*key++ != c)
			return 0;
	}
	return *key == '\0';
}

static void json_name(const char *name, char *out, size_t size)
{
	size_t n = 0;
	int up = 0;

	for (; *name && n + 1 < size; name++) {
		char c = *name;

		if (c == '_') {
			up = 1;
			continue;
		}
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		up = 0;
		out[n++] = c;
	}
	out[n] = '\0';
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
						  const char *key)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);

	if (f)
		return f;
	for (unsigned i = 0; i < d->n_fields; i++)
		if (json_name_eq(d->fields[i].name, key))
			return &d->fields[i];
	return NULL;
}

/* protoc names a map's entry message <CamelCaseField>Entry, nested in the message, with fields
 * key = 1 and value = 2; protobuf-c keeps no map flag, so that shape is the test. */
int pbjson_is_map_field(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	char want[NAME_MAX_LEN + 8];
	size_t n = 0, plen = strlen(parent->name);
	int up = 1;

	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return 0;
	if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
	    strcmp(e->fields[0].name, "key") || strcmp(e->fields[1].name, "value"))
		return 0;
	for (const char *s = f->name; *s && n < NAME_MAX_LEN; s++) {
		if (*s == '_') {
			up = 1;
			continue;
		}
		want[n++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
		up = 0;
	}
	memcpy(want + n, "Entry", 6);
	return !strcmp(e->short_name, want) && !strncmp(e->name, parent->name, plen) &&
	       e->name[plen] == '.' && !strcmp(e->name + plen + 1, want);
}

size_t pbjson_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* ---- base64 --------------------------------------------------------------------------------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe alphabet, padding optional (proto3 JSON accepts both). */
static int b64_decode(const char *s, size_t len, ProtobufCBinaryData *out)
{
	uint8_t *buf;
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0;

	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -EINVAL;
	buf = malloc(len * 3 / 4 + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int v = b64_val(s[i]);

		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (uint8_t)(acc >> bits);
		}
	}
	out->data = buf;
	out->len = n;
	return 0;
}

static void b64_encode(struct strbuf *out, const uint8_t *p, size_t len)
{
	strbuf_addc(out, '"');
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		q[0] = b64_chars[(v >> 18) & 63];
		q[1] = b64_chars[(v >> 12) & 63];
		q[2] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? b64_chars[v & 63] : '=';
		strbuf_add(out, q, 4);
	}
	strbuf_addc(out, '"');
}

/* ---- calendar ------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ---- decoding ------------------------------------------------------------------------------- */

struct dctx {
	unsigned flags;
	size_t visits;
	int depth;
	struct strbuf path;
	struct jtree_err *err;
};

static int derr(struct dctx *c, const struct jtree_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "path: message" into err (the path is left out at the top level). */
static void path_verr(struct jtree_err *err, const struct strbuf *path, const char *fmt, va_list ap)
{
	int len = 0;

	if (path->len)
		len = snprintf(err->msg, sizeof(err->msg), "%s: ", strbuf_str(path));
	if (len >= (int)sizeof(err->msg))
		len = (int)sizeof(err->msg) - 1;
	vsnprintf(err->msg + len, sizeof(err->msg) - (size_t)len, fmt, ap);
}

static int derr(struct dctx *c, const struct jtree_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	path_verr(c->err, &c->path, fmt, ap);
	va_end(ap);
	c->err->line = n ? n->line : 0;
	c->err->column = n ? n->column : 0;
	return -EINVAL;
}

static int dnomem(struct dctx *c)
{
	snprintf(c->err->msg, sizeof(c->err->msg), "%s%sout of memory", strbuf_str(&c->path),
		 c->path.len ? ": " : "");
	return -ENOMEM;
}

/* A short description of what a node is, for "expected X, got Y". */
static const char *got(const struct jtree_node *n, char *buf, size_t size)
{
	switch (n->kind) {
	case JT_NULL:
		return "null";
	case JT_BOOL:
		return n->u.boolean ? "true" : "false";
	case JT_NUMBER:
		snprintf(buf, size, "%.*s", SHOWN_TEXT_MAX, n->u.str);
		return buf;
	case JT_STRING:
		snprintf(buf, size, "\"%.*s%s\"", SHOWN_TEXT_MAX, n->u.str,
			 n->len > SHOWN_TEXT_MAX ? "..." : "");
		return buf;
	case JT_OBJECT:
		return "an object";
	case JT_ARRAY:
		return "a list";
	}
	return "?";
}

static int expected(struct dctx *c, const struct jtree_node *n, const char *what)
{
	char buf[SHOWN_TEXT_MAX + 8];

	return derr(c, n, "expected %s, got %s", what, got(n, buf, sizeof(buf)));
}

static size_t path_push_key(struct dctx *c, const char *key)
{
	size_t mark = c->path.len;

	if (mark)
		strbuf_addc(&c->path, '.');
	strbuf_adds(&c->path, key);
	return mark;
}

/* Map and Struct keys: .key when it reads as a name, ["key"] otherwise. */
static size_t path_push_map_key(struct dctx *c, const char *key, size_t len)
{
	size_t mark = c->path.len;
	int plain = len > 0 && strlen(key) == len;

	for (size_t i = 0; plain && i < len; i++) {
		char ch = key[i];

		plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
			(i > 0 && ((ch >= '0' && ch <= '9') || ch == '-' || ch == '.'));
	}
	if (plain)
		return path_push_key(c, key);
	strbuf_addc(&c->path, '[');
	jtree_emit_string(&c->path, key, len);
	strbuf_addc(&c->path, ']');
	return mark;
}

static size_t path_push_index(struct dctx *c, size_t i)
{
	size_t mark = c->path.len;

	strbuf_addf(&c->path, "[%zu]", i);
	return mark;
}

static void path_pop(struct dctx *c, size_t mark)
{
	strbuf_truncate(&c->path, mark);
}

static int visit(struct dctx *c, const struct jtree_node *n)
{
	if (++c->visits > PBJSON_MAX_VISITS)
		return derr(c, n, "document too large (more than %u values, counting YAML aliases)",
			    PBJSON_MAX_VISITS);
	return 0;
}

static const char *int_type_name(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return "int32";
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return "uint32";
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return "int64";
	default:
		return "uint64";
	}
}

static int all_digits(const char *s, int allow_minus)
{
	if (allow_minus && *s == '-')
		s++;
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Integers: JSON numbers or strings holding one; an exponent or fraction is fine if the value is
 * integral (proto3 JSON), exact above 2^53 only when written as plain digits. */
static int decode_int(struct dctx *c, const struct jtree_node *n, ProtobufCType t, void *slot)
{
	int is_unsigned = t == PROTOBUF_C_TYPE_UINT32 || t == PROTOBUF_C_TYPE_FIXED32 ||
			  t == PROTOBUF_C_TYPE_UINT64 || t == PROTOBUF_C_TYPE_FIXED64;
	int is32 = pbjson_elem_size(t) == 4;
	const char *s;
	int64_t sv = 0;
	uint64_t uv = 0;
	int neg = 0;

	if (n->kind != JT_NUMBER && n->kind != JT_STRING)
		return expected(c, n, "an integer");
	s = n->u.str;
	if (n->kind == JT_STRING && (n->len == 0 || strlen(s) != n->len))
		return expected(c, n, "an integer");
	if (all_digits(s, 1)) {
		char *end;

		errno = 0;
		neg = *s == '-';
		if (neg)
			sv = strtoll(s, &end, 10);
		else
			uv = strtoull(s, &end, 10);
		if (errno == ERANGE)
			goto range;
		if (!neg && uv <= INT64_MAX)
			sv = (int64_t)uv;
	} else {
		char *end;
		double d;

		errno = 0;
		d = strtod(s, &end);
		if (*end || end == s || !isfinite(d) ||
		    (n->kind == JT_STRING && !(*s == '-' || (*s >= '0' && *s <= '9'))))
			return expected(c, n, "an integer");
		if (d != floor(d))
			return expected(c, n, "an integer");
		if (fabs(d) > MAX_SAFE_DOUBLE_INT)
			return derr(c, n,
				    "%s is too large to be exact; write it as a plain integer", s);
		neg = d < 0;
		sv = (int64_t)d;
		uv = neg ? 0 : (uint64_t)d;
	}
	if (is_unsigned && neg && sv != 0)
		goto range;
	if (is32 && is_unsigned && uv > UINT32_MAX)
		goto range;
	if (is32 && !is_unsigned && (neg ? sv < INT32_MIN : uv > INT32_MAX))
		goto range;
	if (!is32 && !is_unsigned && !neg && uv > INT64_MAX)
		goto range;
	if (is32 && is_unsigned)
		*(uint32_t *)slot = (uint32_t)uv;
	else if (is32)
		*(int32_t *)slot = neg ? (int32_t)sv : (int32_t)uv;
	else if (is_unsigned)
		*(uint64_t *)slot = uv;
	else
		*(int64_t *)slot = neg ? sv : (int64_t)uv;
	return 0;
range:
	return derr(c, n, "%.*s is out of range for %s", SHOWN_TEXT_MAX, s, int_type_name(t));
}

static int decode_float(struct dctx *c, const struct jtree_node *n, int is_float, void *slot)
{
	const char *what = is_float ? "a float" : "a number";
	double d;

	if (n->kind == JT_STRING && !strcmp(n->u.str, "NaN")) {
		d = NAN;
	} else if (n->kind == JT_STRING && !strcmp(n->u.str, "Infinity")) {
		d = INFINITY;
	} else if (n->kind == JT_STRING && !strcmp(n->u.str, "-Infinity")) {
		d = -INFINITY;
	} else if (n->kind == JT_NUMBER || n->kind == JT_STRING) {
		char *end;

		if (n->kind == JT_STRING &&
		    (n->len == 0 || strlen(n->u.str) != n->len ||
		     !(*n->u.str == '-' || (*n->u.str >= '0' && *n->u.str <= '9'))))
			return expected(c, n, what);
		errno = 0;
		d = strtod(n->u.str, &end);
		if (*end)
			return expected(c, n, what);
		if (errno == ERANGE && fabs(d) > 1.0)
			return derr(c, n, "%.*s is out of range for %s", SHOWN_TEXT_MAX, n->u.str,
				    is_float ? "float" : "double");
		if (is_float && fabs(d) > FLT_MAX)
			return derr(c, n, "%.*s is out of range for float", SHOWN_TEXT_MAX,
				    n->u.str);
	} else {
		return expected(c, n, what);
	}
	if (is_float)
		*(float *)slot = (float)d;
	else
		*(double *)slot = d;
	return 0;
}

static int decode_enum(struct dctx *c, const struct jtree_node *n,
		       const ProtobufCEnumDescriptor *ed, int32_t *slot)
{
	const ProtobufCEnumValue *v;

	if (ed == &google__protobuf__null_value__descriptor && n->kind == JT_NULL) {
		*slot = 0;
		return 0;
	}
	if (n->kind == JT_NUMBER)
		return decode_int(c, n, PROTOBUF_C_TYPE_INT32, slot);
	if (n->kind != JT_STRING)
		return expected(c, n, "an enum name");
	v = protobuf_c_enum_descriptor_get_value_by_name(ed, n->u.str);
	if (!v) {
		if (all_digits(n->u.str, 1))
			return decode_int(c, n, PROTOBUF_C_TYPE_INT32, slot);
		return derr(c, n, "unknown value \"%.*s\" for enum %s", SHOWN_TEXT_MAX, n->u.str,
			    ed->name);
	}
	*slot = v->value;
	return 0;
}

static int decode_message(struct dctx *c, const struct jtree_node *n,
			  const ProtobufCMessageDescriptor *d, int in_any, ProtobufCMessage **out);

/* One value of a non-repeated type into slot (a field, an array element, a map key/value). */
static int decode_value(struct dctx *c, const struct jtree_node *n,
			const ProtobufCFieldDescriptor *f, void *slot)
{
	int rc;

	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE:
		return decode_message(c, n, f->descriptor, 0, (ProtobufCMessage **)slot);
	case PROTOBUF_C_TYPE_ENUM:
		return decode_enum(c, n, f->descriptor, slot);
	case PROTOBUF_C_TYPE_BOOL:
		if (n->kind != JT_BOOL)
			return expected(c, n, "true or false");
		*(protobuf_c_boolean *)slot = n->u.boolean;
		return 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return decode_float(c, n, 1, slot);
	case PROTOBUF_C_TYPE_DOUBLE:
		return decode_float(c, n, 0, slot);
	case PROTOBUF_C_TYPE_STRING:
		if (n->kind != JT_STRING) {
			if (n->kind == JT_NUMBER || n->kind == JT_BOOL) {
				char buf[SHOWN_TEXT_MAX + 8];

				return derr(c, n, "expected a string, got %s (quote it)",
					    got(n, buf, sizeof(buf)));
			}
			return expected(c, n, "a string");
		}
		if (strlen(n->u.str) != n->len)
			return derr(c, n, "string contains a NUL character");
		*(char **)slot = strdup(n->u.str);
		return *(char **)slot ? 0 : dnomem(c);
	case PROTOBUF_C_TYPE_BYTES:
		if (n->kind != JT_STRING)
			return expected(c, n, "base64 text");
		rc = b64_decode(n->u.str, n->len, slot);
		if (rc == -ENOMEM)
			return dnomem(c);
		if (rc)
			return expected(c, n, "base64 text");
		return 0;
	default:
		return decode_int(c, n, f->type, slot);
	}
}

/* A map key arrives as object-member text; give it the key field's type. */
static int decode_map_key(struct dctx *c, const struct jtree_member *m,
			  const ProtobufCFieldDescriptor *kf, void *slot)
{
	struct jtree_node k = *m->value;

	k.kind = JT_STRING;
	k.u.str = m->key;
	k.len = m->key_len;
	if (kf->type == PROTOBUF_C_TYPE_BOOL) {
		if (strcmp(m->key, "true") && strcmp(m->key, "false"))
			return expected(c, &k, "a key of true or false");
		*(protobuf_c_boolean *)slot = !strcmp(m->key, "true");
		return 0;
	}
	if (kf->type == PROTOBUF_C_TYPE_STRING)
		return decode_value(c, &k, kf, slot);
	return decode_int(c, &k, kf->type, slot);
}

static int is_value_message(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_MESSAGE && wkt_of(f->descriptor) == WKT_VALUE;
}

static uint64_t map_key_bits(const ProtobufCMessageDescriptor *ed, const ProtobufCMessage *e)
{
	const void *slot = (const char *)e + ed->fields[0].offset;

	if (ed->fields[0].type == PROTOBUF_C_TYPE_BOOL)
		return *(const protobuf_c_boolean *)slot != 0;
	return pbjson_elem_size(ed->fields[0].type) == 4 ? *(const uint32_t *)slot
							 : *(const uint64_t *)slot;
}

static int key_bits_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Integer and bool keys written differently ("1", "01") may be the same key. */
static int check_map_keys(struct dctx *c, const struct jtree_node *n,
			  const ProtobufCMessageDescriptor *ed, ProtobufCMessage **entries,
			  size_t count)
{
	uint64_t *keys = malloc(count * sizeof(*keys));
	int rc = 0;

	if (!keys)
		return dnomem(c);
	for (size_t i = 0; i < count; i++)
		keys[i] = map_key_bits(ed, entries[i]);
	qsort(keys, count, sizeof(*keys), key_bits_cmp);
	for (size_t i = 1; i < count && !rc; i++)
		if (keys[i] == keys[i - 1])
			rc = derr(c, n, "the same map key is given twice");
	free(keys);
	return rc;
}

static int decode_map(struct dctx *c, const struct jtree_node *n, const ProtobufCFieldDescriptor *f,
		      ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	size_t *count = MEMBER(m, f->quantifier_offset);
	ProtobufCMessage ***arr = MEMBER(m, f->offset);
	int rc = 0;

	if (n->kind != JT_OBJECT)
		return expected(c, n, "an object (map)");
	if (!n->len)
		return 0;
	*arr = calloc(n->len, sizeof(**arr));
	if (!*arr)
		return dnomem(c);
	for (size_t i = 0; i < n->len && !rc; i++) {
		const struct jtree_member *mem = &n->u.members[i];
		size_t mark = path_push_map_key(c, mem->key, mem->key_len);
		ProtobufCMessage *e = calloc(1, ed->sizeof_message);

		if (!e) {
			rc = dnomem(c);
			break;
		}
		protobuf_c_message_init(ed, e);
		rc = decode_map_key(c, mem, &ed->fields[0], MEMBER(e, ed->fields[0].offset));
		if (!rc && mem->value->kind == JT_NULL && !is_value_message(&ed->fields[1]))
			rc = derr(c, mem->value, "null is not allowed as a map value");
		if (!rc)
			rc = decode_value(c, mem->value, &ed->fields[1],
					  MEMBER(e, ed->fields[1].offset));
		if (rc) {
			protobuf_c_message_free_unpacked(e, NULL);
			break;
		}
		(*arr)[(*count)++] = e;
		path_pop(c, mark);
	}
	if (!rc && ed->fields[0].type != PROTOBUF_C_TYPE_STRING)
		rc = check_map_keys(c, n, ed, *arr, *count);
	return rc;
}

static int decode_repeated(struct dctx *c, const struct jtree_node *n,
			   const ProtobufCFieldDescriptor *f, ProtobufCMessage *m)
{
	size_t *count = MEMBER(m, f->quantifier_offset);
	void **arr = MEMBER(m, f->offset);
	size_t esz = pbjson_elem_size(f->type);

	if (n->kind != JT_ARRAY)
		return expected(c, n, "a list");
	if (!n->len)
		return 0;
	*arr = calloc(n->len, esz);
	if (!*arr)
		return dnomem(c);
	for (size_t i = 0; i < n->len; i++) {
		size_t mark = path_push_index(c, i);
		int rc;

		if (n->u.items[i]->kind == JT_NULL && !is_value_message(f))
			return derr(c, n->u.items[i], "null is not allowed in a list");
		rc = decode_value(c, n->u.items[i], f, (char *)*arr + i * esz);
		if (rc)
			return rc;
		(*count)++;
		path_pop(c, mark);
	}
	return 0;
}

/* Sets field f of m from n; the caller has checked that f was not given twice. */
static int decode_field(struct dctx *c, const struct jtree_node *n,
			const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
			ProtobufCMessage *m)
{
	int rc;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		if (n->kind == JT_NULL)
			return 0;
		return pbjson_is_map_field(d, f) ? decode_map(c, n, f, m)
						 : decode_repeated(c, n, f, m);
	}
	if (n->kind == JT_NULL && !is_value_message(f) && !is_null_value_enum(f))
		return 0;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = MEMBER(m, f->quantifier_offset);

		if (*which) {
			const ProtobufCFieldDescriptor *other =
				protobuf_c_message_descriptor_get_field(d, *which);

			return derr(c, n, "\"%s\" is already set; only one of them may be",
				    other ? other->name : "another field of the same oneof");
		}
		rc = decode_value(c, n, f, MEMBER(m, f->offset));
		if (!rc)
			*which = f->id;
		return rc;
	}
	rc = decode_value(c, n, f, MEMBER(m, f->offset));
	if (!rc && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
	    f->type != PROTOBUF_C_TYPE_STRING)
		*(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
	return rc;
}

static int decode_fields(struct dctx *c, const struct jtree_node *n,
			 const ProtobufCMessageDescriptor *d, int in_any, ProtobufCMessage *m)
{
	const char **given;
	int rc = 0;

	if (n->kind != JT_OBJECT)
		return expected(c, n, "an object");
	if (!n->len)
		return 0;
	/* The key that set each field, to catch a field given twice under both of its names. */
	given = calloc(d->n_fields ? d->n_fields : 1, sizeof(*given));
	if (!given)
		return dnomem(c);
	for (size_t i = 0; i < n->len && !rc; i++) {
		const struct jtree_member *mem = &n->u.members[i];
		const ProtobufCFieldDescriptor *f;
		size_t mark;

		if (in_any && !strcmp(mem->key, "@type"))
			continue;
		f = find_field(d, mem->key);
		if (!f) {
			rc = derr(c, mem->value, "unknown field \"%s\" in %s", mem->key, d->name);
			break;
		}
		mark = path_push_key(c, mem->key);
		if (given[f - d->fields]) {
			rc = derr(c, mem->value, "same field as \"%s\"", given[f - d->fields]);
			break;
		}
		given[f - d->fields] = mem->key;
		rc = decode_field(c, mem->value, d, f, m);
		if (!rc)
			path_pop(c, mark);
	}
	free(given);
	return rc;
}

/* "1.5s", "-0.000000001s": seconds with up to nine fraction digits. */
static int parse_duration(const char *s, int64_t *secs, int32_t *nanos)
{
	const char *p = s;
	int neg = 0, digits = 0;
	int64_t sec = 0;
	int32_t ns = 0;

	if (*p == '-')
		neg = 1, p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		sec = sec * 10 + (*p - '0');
		if (sec > DURATION_MAX_SECONDS)
			return -ERANGE;
	}
	if (*p == '.') {
		p++;
		for (; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits == 9)
				return -EINVAL;
			ns = ns * 10 + (*p - '0');
		}
		if (!digits)
			return -EINVAL;
		for (int i = digits; i < 9; i++)
			ns *= 10;
	}
	if (p[0] != 's' || p[1])
		return -EINVAL;
	*secs = neg ? -sec : sec;
	*nanos = neg ? -ns : ns;
	return 0;
}

static int parse_2digits(const char *p, unsigned *v)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	*v = (unsigned)((p[0] - '0') * 10 + (p[1] - '0'));
	return 0;
}

/* RFC 3339: 1972-01-01T10:00:20.021Z, or with an offset such as -08:00. */
static int parse_timestamp(const char *s, int64_t *secs, int32_t *nanos)
{
	unsigned y1, y2, mo, d, h, mi, sec, oh = 0, om = 0;
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p;
	int32_t ns = 0;
	int digits = 0, sign = 0;
	int64_t t;

	if (strlen(s) < 20 || parse_2digits(s, &y1) || parse_2digits(s + 2, &y2) || s[4] != '-' ||
	    parse_2digits(s + 5, &mo) || s[7] != '-' || parse_2digits(s + 8, &d) ||
	    (s[10] != 'T' && s[10] != 't') || parse_2digits(s + 11, &h) || s[13] != ':' ||
	    parse_2digits(s + 14, &mi) || s[16] != ':' || parse_2digits(s + 17, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits == 9)
				return -EINVAL;
			ns = ns * 10 + (*p - '0');
		}
		if (!digits)
			return -EINVAL;
		for (int i = digits; i < 9; i++)
			ns *= 10;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1]) {
		sign = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && !parse_2digits(p + 1, &oh) &&
		   p[3] == ':' && !parse_2digits(p + 4, &om) && oh < 24 && om < 60) {
		sign = *p == '+' ? 1 : -1;
	} else {
		return -EINVAL;
	}
	t = days_from_civil(y1 * 100 + y2, mo, d);
	{
		int64_t yy;
		unsigned mm, dd;

		civil_from_days(t, &yy, &mm, &dd);
		if (mm != mo || dd != d) /* February 29th of a common year */
			return -EINVAL;
	}
	t = t * 86400 + h * 3600 + mi * 60 + sec - sign * (int64_t)(oh * 3600 + om * 60);
	if (t < TIMESTAMP_MIN || t > TIMESTAMP_MAX)
		return -ERANGE;
	*secs = t;
	*nanos = ns;
	return 0;
}

static int emit_node_bounded(struct dctx *c, const struct jtree_node *n, struct strbuf *out);

static int decode_any(struct dctx *c, const struct jtree_node *n, Google__Protobuf__Any *any)
{
	const ProtobufCMessageDescriptor *d;
	const struct jtree_node *type;
	ProtobufCMessage *inner = NULL;
	size_t size;
	int rc;

	if (n->kind != JT_OBJECT)
		return expected(c, n, "an object with \"@type\"");
	if (!n->len)
		return 0;
	type = jtree_get(n, "@type");
	if (!type)
		return derr(c, n, "expected \"@type\" with the type URL of the value");
	if (type->kind != JT_STRING || !type->len || strlen(type->u.str) != type->len)
		return derr(c, type, "\"@type\" must be a type URL like \"%s%s\"",
			    PBREG_TYPE_URL_PREFIX, "envoy.config.listener.v3.Listener");
	d = pbreg_find(type->u.str);
	if (!d && !(c->flags & PBJSON_OPAQUE_ANY))
		return derr(c, type, "unknown type \"%.*s\"", 2 * SHOWN_TEXT_MAX, type->u.str);
	any->type_url = strdup(type->u.str);
	if (!any->type_url)
		return dnomem(c);
	if (!d) {
		/* Kept as the JSON text of the other members, for the caller to judge. */
		struct strbuf body = STRBUF_INIT;
		struct jtree_node rest = *n;
		struct jtree_member *mem = malloc(n->len * sizeof(*mem));
		size_t k = 0;

		if (!mem)
			return dnomem(c);
		for (size_t i = 0; i < n->len; i++)
			if (strcmp(n->u.members[i].key, "@type"))
				mem[k++] = n->u.members[i];
		rest.u.members = mem;
		rest.len = k;
		rc = emit_node_bounded(c, &rest, &body);
		free(mem);
		if (rc) {
			strbuf_release(&body);
			return rc;
		}
		any->value.data = (uint8_t *)strbuf_detach(&body, &any->value.len);
		return 0;
	}
	if (wkt_of(d) != WKT_NONE) {
		const struct jtree_node *v = jtree_get(n, "value");
		size_t mark;

		for (size_t i = 0; i < n->len; i++)
			if (strcmp(n->u.members[i].key, "@type") &&
			    strcmp(n->u.members[i].key, "value"))
				return derr(
					c, n->u.members[i].value,
					"unknown field \"%s\" (a %s in an Any has only \"value\")",
					n->u.members[i].key, d->name);
		if (!v)
			return derr(c, n, "expected \"value\" holding the %s", d->name);
		mark = path_push_key(c, "value");
		rc = decode_message(c, v, d, 0, &inner);
		if (rc)
			return rc;
		path_pop(c, mark);
	} else {
		rc = decode_message(c, n, d, 1, &inner);
		if (rc)
			return rc;
	}
	size = protobuf_c_message_get_packed_size(inner);
	any->value.data = malloc(size ? size : 1);
	if (!any->value.data) {
		protobuf_c_message_free_unpacked(inner, NULL);
		return dnomem(c);
	}
	any->value.len = protobuf_c_message_pack(inner, any->value.data);
	protobuf_c_message_free_unpacked(inner, NULL);
	return 0;
}

static int decode_value_wkt(struct dctx *c, const struct jtree_node *n, Google__Protobuf__Value *v)
{
	const ProtobufCMessageDescriptor *sub = NULL;
	ProtobufCMessage *msg;
	int rc;

	switch (n->kind) {
	case JT_NULL:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
		v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
		return 0;
	case JT_BOOL:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
		v->bool_value = n->u.boolean;
		return 0;
	case JT_NUMBER:
		rc = decode_float(c, n, 0, &v->number_value);
		if (!rc)
			v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
		return rc;
	case JT_STRING:
		if (strlen(n->u.str) != n->len)
			return derr(c, n, "string contains a NUL character");
		v->string_value = strdup(n->u.str);
		if (!v->string_value)
			return dnomem(c);
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		return 0;
	case JT_OBJECT:
		sub = &google__protobuf__struct__descriptor;
		break;
	case JT_ARRAY:
		sub = &google__protobuf__list_value__descriptor;
		break;
	}
	rc = decode_message(c, n, sub, 0, &msg);
	if (rc)
		return rc;
	if (n->kind == JT_OBJECT) {
		v->struct_value = (Google__Protobuf__Struct *)msg;
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	} else {
		v->list_value = (Google__Protobuf__ListValue *)msg;
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
	}
	return 0;
}

static int decode_wkt(struct dctx *c, const struct jtree_node *n,
		      const ProtobufCMessageDescriptor *d, enum wkt kind, ProtobufCMessage *m)
{
	int rc;

	switch (kind) {
	case WKT_ANY:
		return decode_any(c, n, (Google__Protobuf__Any *)m);
	case WKT_DURATION: {
		Google__Protobuf__Duration *du = (Google__Protobuf__Duration *)m;

		if (n->kind != JT_STRING)
			return expected(c, n, "a duration like \"1.5s\"");
		rc = parse_duration(n->u.str, &du->seconds, &du->nanos);
		if (rc == -ERANGE)
			return derr(c, n, "duration out of range (at most %llds)",
				    (long long)DURATION_MAX_SECONDS);
		if (rc)
			return expected(c, n, "a duration like \"1.5s\"");
		return 0;
	}
	case WKT_TIMESTAMP: {
		Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)m;

		if (n->kind != JT_STRING)
			return expected(c, n, "a timestamp like \"2024-01-02T03:04:05Z\"");
		rc = parse_timestamp(n->u.str, &ts->seconds, &ts->nanos);
		if (rc == -ERANGE)
			return derr(c, n, "timestamp out of range (years 1 to 9999)");
		if (rc)
			return expected(c, n, "a timestamp like \"2024-01-02T03:04:05Z\"");
		return 0;
	}
	case WKT_STRUCT:
		if (n->kind != JT_OBJECT)
			return expected(c, n, "an object");
		return decode_map(c, n, &d->fields[0], m);
	case WKT_VALUE:
		return decode_value_wkt(c, n, (Google__Protobuf__Value *)m);
	case WKT_LIST:
		return decode_repeated(c, n, &d->fields[0], m);
	case WKT_WRAPPER:
		if (n->kind == JT_OBJECT || n->kind == JT_ARRAY)
			return expected(
				c, n,
				"a bare value (wrappers are written without {\"value\": ...})");
		return decode_field(c, n, d, &d->fields[0], m);
	case WKT_NONE:
		break;
	}
	return decode_fields(c, n, d, 0, m);
}

static int decode_message(struct dctx *c, const struct jtree_node *n,
			  const ProtobufCMessageDescriptor *d, int in_any, ProtobufCMessage **out)
{
	ProtobufCMessage *m;
	enum wkt kind = wkt_of(d);
	int rc;

	*out = NULL;
	rc = visit(c, n);
	if (rc)
		return rc;
	if (c->depth >= PBJSON_MAX_DEPTH)
		return derr(c, n, "nested deeper than %d messages", PBJSON_MAX_DEPTH);
	if (kind == WKT_NONE && n->kind != JT_OBJECT)
		return expected(c, n, "an object");
	m = calloc(1, d->sizeof_message);
	if (!m)
		return dnomem(c);
	protobuf_c_message_init(d, m);
	c->depth++;
	rc = in_any ? decode_fields(c, n, d, 1, m) : decode_wkt(c, n, d, kind, m);
	c->depth--;
	if (rc) {
		protobuf_c_message_free_unpacked(m, NULL);
		return rc;
	}
	*out = m;
	return 0;
}

/* Emits a subtree for an opaque Any after checking its expanded size against the budget. */
static size_t weigh(const struct jtree_node *n, size_t budget, int depth)
{
	size_t w = 1;

	if (depth > PBJSON_MAX_DEPTH)
		return budget + 1;
	for (size_t i = 0; i < n->len && w <= budget; i++) {
		if (n->kind == JT_ARRAY)
			w += weigh(n->u.items[i], budget - w, depth + 1);
		else if (n->kind == JT_OBJECT)
			w += weigh(n->u.members[i].value, budget - w, depth + 1);
		else
			break;
	}
	return w;
}

static int emit_node_bounded(struct dctx *c, const struct jtree_node *n, struct strbuf *out)
{
	size_t budget =
		PBJSON_MAX_VISITS - (c->visits < PBJSON_MAX_VISITS ? c->visits : PBJSON_MAX_VISITS);
	size_t w = weigh(n, budget, c->depth);

	if (w > budget)
		return derr(c, n, "document too large (more than %u values, counting YAML aliases)",
			    PBJSON_MAX_VISITS);
	c->visits += w;
	jtree_emit(n, 0, 0, out);
	return out->err ? dnomem(c) : 0;
}

int pbjson_from_node(const struct jtree_node *node, const ProtobufCMessageDescriptor *desc,
		     unsigned flags, const char *path, ProtobufCMessage **out,
		     struct jtree_err *err)
{
	struct dctx c = {.flags = flags, .err = err};
	int rc;

	memset(err, 0, sizeof(*err));
	if (path && *path)
		strbuf_adds(&c.path, path);
	rc = decode_message(&c, node, desc, 0, out);
	if (!rc && c.path.err)
		rc = dnomem(&c);
	if (rc && *out) {
		protobuf_c_message_free_unpacked(*out, NULL);
		*out = NULL;
	}
	strbuf_release(&c.path);
	return rc;
}

int pbjson_parse(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
		 unsigned flags, ProtobufCMessage **out, struct jtree_err *err)
{
	struct jtree *t;
	int rc;

	*out = NULL;
	rc = jtree_parse(text, len, &t, err);
	if (rc)
		return rc;
	rc = pbjson_from_node(jtree_root(t), desc, flags, NULL, out, err);
	jtree_free(t);
	return rc;
}

/* ---- rendering ------------------------------------------------------------------------------ */

struct ectx {
	unsigned flags;
	int depth;
	struct strbuf *out;
	struct strbuf path;
	struct jtree_err *err;
};

static int eerr(struct ectx *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int eerr(struct ectx *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	path_verr(e->err, &e->path, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void newline(struct ectx *e, int indent)
{
	if (!(e->flags & PBJSON_PRETTY))
		return;
	strbuf_addc(e->out, '\n');
	for (int i = 0; i < indent; i++)
		strbuf_add(e->out, "  ", 2);
}

/* Starts member number *count of an object at indent level indent + 1. */
static void member_key(struct ectx *e, int *count, int indent, const char *key)
{
	if ((*count)++)
		strbuf_addc(e->out, ',');
	newline(e, indent + 1);
	jtree_emit_string(e->out, key, strlen(key));
	strbuf_adds(e->out, e->flags & PBJSON_PRETTY ? ": " : ":");
}

static void field_key(struct ectx *e, int *count, int indent, const ProtobufCFieldDescriptor *f)
{
	char camel[NAME_MAX_LEN];

	if (e->flags & PBJSON_CAMEL) {
		json_name(f->name, camel, sizeof(camel));
		member_key(e, count, indent, camel);
	} else {
		member_key(e, count, indent, f->name);
	}
}

static void emit_double(struct strbuf *out, double v, int is_float)
{
	char buf[40];

	if (isnan(v)) {
		strbuf_adds(out, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		strbuf_adds(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	/* The shortest text that reads back as the same value. */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (is_float ? (float)strtod(buf, NULL) == (float)v : strtod(buf, NULL) == v)
			break;
	}
	strbuf_adds(out, buf);
}

static int render_message(struct ectx *e, const ProtobufCMessage *m, int indent);

static int render_value(struct ectx *e, const ProtobufCFieldDescriptor *f, const void *slot,
			int indent)
{
	const ProtobufCEnumValue *ev;

	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE:
		return render_message(e, *(ProtobufCMessage *const *)slot, indent);
	case PROTOBUF_C_TYPE_ENUM:
		if (is_null_value_enum(f))
			return strbuf_adds(e->out, "null");
		ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int32_t *)slot);
		if (ev)
			return strbuf_addf(e->out, "\"%s\"", ev->name);
		return strbuf_addf(e->out, "%" PRId32, *(const int32_t *)slot);
	case PROTOBUF_C_TYPE_BOOL:
		return strbuf_adds(e->out, *(const protobuf_c_boolean *)slot ? "true" : "false");
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return strbuf_addf(e->out, "%" PRId32, *(const int32_t *)slot);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return strbuf_addf(e->out, "%" PRIu32, *(const uint32_t *)slot);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return strbuf_addf(e->out, "\"%" PRId64 "\"", *(const int64_t *)slot);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return strbuf_addf(e->out, "\"%" PRIu64 "\"", *(const uint64_t *)slot);
	case PROTOBUF_C_TYPE_FLOAT:
		emit_double(e->out, *(const float *)slot, 1);
		return e->out->err;
	case PROTOBUF_C_TYPE_DOUBLE:
		emit_double(e->out, *(const double *)slot, 0);
		return e->out->err;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)slot;

		return jtree_emit_string(e->out, s ? s : "", s ? strlen(s) : 0);
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = slot;

		b64_encode(e->out, b->data, b->len);
		return e->out->err;
	}
	}
	return 0;
}

static int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const void *slot = (const char *)m + f->offset;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)((const char *)m + f->quantifier_offset) > 0;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const void *const *)slot != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_STRING)
			return *(const char *const *)slot != NULL &&
			       *(const void *const *)slot != f->default_value;
		return *(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset);
	}
	if (f->label == PROTOBUF_C_LABEL_REQUIRED)
		return 1;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)slot;

		return s && *s;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)slot)->len > 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)slot != 0 || signbit(*(const float *)slot);
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)slot != 0 || signbit(*(const double *)slot);
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *)slot != 0;
	default:
		return pbjson_elem_size(f->type) == 4 ? *(const uint32_t *)slot != 0
						      : *(const uint64_t *)slot != 0;
	}
}

static void render_map_key(struct ectx *e, int *count, int indent,
			   const ProtobufCFieldDescriptor *kf, const void *slot)
{
	char buf[32];

	switch (kf->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)slot;

		member_key(e, count, indent, s ? s : "");
		return;
	}
	case PROTOBUF_C_TYPE_BOOL:
		member_key(e, count, indent, *(const protobuf_c_boolean *)slot ? "true" : "false");
		return;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		snprintf(buf, sizeof(buf), "%" PRIu32, *(const uint32_t *)slot);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)slot);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)slot);
		break;
	default:
		snprintf(buf, sizeof(buf), "%" PRId32, *(const int32_t *)slot);
		break;
	}
	member_key(e, count, indent, buf);
}

static int render_field(struct ectx *e, const ProtobufCMessageDescriptor *d,
			const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m, int indent)
{
	const void *slot = (const char *)m + f->offset;
	size_t n, esz;
	int rc = 0;

	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return render_value(e, f, slot, indent + 1);
	n = *(const size_t *)((const char *)m + f->quantifier_offset);
	if (pbjson_is_map_field(d, f)) {
		const ProtobufCMessageDescriptor *ed = f->descriptor;
		int count = 0;

		strbuf_addc(e->out, '{');
		for (size_t i = 0; i < n && !rc; i++) {
			const ProtobufCMessage *entry =
				(*(ProtobufCMessage *const *const *)slot)[i];
			const void *kslot = (const char *)entry + ed->fields[0].offset;
			const void *vslot = (const char *)entry + ed->fields[1].offset;
			size_t mark = e->path.len;

			render_map_key(e, &count, indent + 1, &ed->fields[0], kslot);
			strbuf_addf(&e->path, "[%zu]", i);
			if (ed->fields[1].type == PROTOBUF_C_TYPE_MESSAGE &&
			    !*(ProtobufCMessage *const *)vslot) {
				rc = wkt_of(ed->fields[1].descriptor) == WKT_VALUE
					     ? strbuf_adds(e->out, "null")
					     : strbuf_adds(e->out, "{}");
			} else {
				rc = render_value(e, &ed->fields[1], vslot, indent + 2);
			}
			strbuf_truncate(&e->path, mark);
		}
		if (count)
			newline(e, indent + 1);
		strbuf_addc(e->out, '}');
		return rc;
	}
	esz = pbjson_elem_size(f->type);
	strbuf_addc(e->out, '[');
	for (size_t i = 0; i < n && !rc; i++) {
		size_t mark = e->path.len;

		if (i)
			strbuf_addc(e->out, ',');
		newline(e, indent + 2);
		strbuf_addf(&e->path, "[%zu]", i);
		rc = render_value(e, f, *(const char *const *)slot + i * esz, indent + 2);
		strbuf_truncate(&e->path, mark);
	}
	newline(e, indent + 1);
	strbuf_addc(e->out, ']');
	return rc;
}

/* The members of a plain message, continuing an object that already has *count members. */
static int render_members(struct ectx *e, const ProtobufCMessage *m, int indent, int *count)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int rc = 0;

	for (unsigned i = 0; i < d->n_fields && !rc; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t mark;

		if (!field_present(m, f))
			continue;
		mark = e->path.len;
		if (mark)
			strbuf_addc(&e->path, '.');
		strbuf_adds(&e->path, f->name);
		field_key(e, count, indent, f);
		rc = render_field(e, d, f, m, indent);
		strbuf_truncate(&e->path, mark);
	}
	return rc;
}

static int render_opaque_any(struct ectx *e, const Google__Protobuf__Any *any, int indent,
			     int *count)
{
	struct jtree_err jerr;
	struct jtree *t = NULL;
	const struct jtree_node *root;

	if (any->value.len && any->value.data[0] == '{' &&
	    jtree_parse((const char *)any->value.data, any->value.len, &t, &jerr) == 0 &&
	    jtree_root(t)->kind == JT_OBJECT) {
		root = jtree_root(t);
		for (size_t i = 0; i < root->len; i++) {
			member_key(e, count, indent, root->u.members[i].key);
			jtree_emit(root->u.members[i].value,
				   e->flags & PBJSON_PRETTY ? JTREE_PRETTY : 0, indent + 1, e->out);
		}
		jtree_free(t);
		return e->out->err;
	}
	jtree_free(t);
	if (any->value.len) {
		member_key(e, count, indent, "@value");
		b64_encode(e->out, any->value.data, any->value.len);
	}
	return e->out->err;
}

static int render_any(struct ectx *e, const Google__Protobuf__Any *any, int indent)
{
	const ProtobufCMessageDescriptor *d;
	ProtobufCMessage *inner;
	int count = 0, rc;

	strbuf_addc(e->out, '{');
	if ((!any->type_url || !*any->type_url) && !any->value.len)
		return strbuf_addc(e->out, '}');
	member_key(e, &count, indent, "@type");
	jtree_emit_string(e->out, any->type_url ? any->type_url : "",
			  any->type_url ? strlen(any->type_url) : 0);
	d = any->type_url ? pbreg_find(any->type_url) : NULL;
	if (!d) {
		if (!(e->flags & PBJSON_OPAQUE_ANY))
			return eerr(e, "unknown type \"%s\" in an Any",
				    any->type_url ? any->type_url : "");
		rc = render_opaque_any(e, any, indent, &count);
	} else {
		inner = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
		if (!inner)
			return eerr(e, "the Any's value does not decode as %s", d->name);
		if (wkt_of(d) != WKT_NONE) {
			member_key(e, &count, indent, "value");
			rc = render_message(e, inner, indent + 1);
		} else {
			rc = render_members(e, inner, indent, &count);
		}
		protobuf_c_message_free_unpacked(inner, NULL);
	}
	if (rc)
		return rc;
	newline(e, indent);
	return strbuf_addc(e->out, '}');
}

static int render_duration(struct ectx *e, int64_t s, int32_t ns, int is_timestamp)
{
	char frac[16] = "";
	int32_t ans = ns < 0 ? -ns : ns;

	/* Duration nanos share the sign of seconds; Timestamp nanos are never negative. */
	if (ans >= NANOS_PER_SECOND || (!is_timestamp && ((s > 0 && ns < 0) || (s < 0 && ns > 0))))
		return eerr(e, "invalid %s (seconds %" PRId64 ", nanos %" PRId32 ")",
			    is_timestamp ? "timestamp" : "duration", s, ns);
	if (ans % 1000000 == 0 && ans)
		snprintf(frac, sizeof(frac), ".%03" PRId32, ans / 1000000);
	else if (ans % 1000 == 0 && ans)
		snprintf(frac, sizeof(frac), ".%06" PRId32, ans / 1000);
	else if (ans)
		snprintf(frac, sizeof(frac), ".%09" PRId32, ans);
	if (is_timestamp) {
		int64_t days, y, rem;
		unsigned mo, d;

		if (s < TIMESTAMP_MIN || s > TIMESTAMP_MAX || ns < 0)
			return eerr(e, "timestamp out of range (seconds %" PRId64 ")", s);
		days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
		rem = s - days * 86400;
		civil_from_days(days, &y, &mo, &d);
		return strbuf_addf(e->out, "\"%04" PRId64 "-%02u-%02uT%02d:%02d:%02d%sZ\"", y, mo,
				   d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
				   frac);
	}
	if (s > DURATION_MAX_SECONDS || s < -DURATION_MAX_SECONDS)
		return eerr(e, "duration out of range (%" PRId64 "s)", s);
	return strbuf_addf(e->out, "\"%s%" PRId64 "%ss\"", (s < 0 || ns < 0) ? "-" : "",
			   s < 0 ? -s : s, frac);
}

static int render_value_wkt(struct ectx *e, const Google__Protobuf__Value *v, int indent)
{
	switch (v->kind_case) {
	case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
		if (!isfinite(v->number_value))
			return eerr(e, "a google.protobuf.Value cannot hold NaN or Infinity");
		emit_double(e->out, v->number_value, 0);
		return e->out->err;
	case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
		return jtree_emit_string(e->out, v->string_value, strlen(v->string_value));
	case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
		return strbuf_adds(e->out, v->bool_value ? "true" : "false");
	case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
		return render_message(e, &v->struct_value->base, indent);
	case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
		return render_message(e, &v->list_value->base, indent);
	default:
		return strbuf_adds(e->out, "null");
	}
}

static int render_message(struct ectx *e, const ProtobufCMessage *m, int indent)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int count = 0, rc;

	if (++e->depth > PBJSON_MAX_DEPTH) {
		e->depth--;
		return eerr(e, "nested deeper than %d messages", PBJSON_MAX_DEPTH);
	}
	switch (wkt_of(d)) {
	case WKT_ANY:
		rc = render_any(e, (const Google__Protobuf__Any *)m, indent);
		break;
	case WKT_DURATION: {
		const Google__Protobuf__Duration *du = (const Google__Protobuf__Duration *)m;

		rc = render_duration(e, du->seconds, du->nanos, 0);
		break;
	}
	case WKT_TIMESTAMP: {
		const Google__Protobuf__Timestamp *ts = (const Google__Protobuf__Timestamp *)m;

		rc = render_duration(e, ts->seconds, ts->nanos, 1);
		break;
	}
	case WKT_STRUCT:
		rc = render_field(e, d, &d->fields[0], m, indent - 1);
		break;
	case WKT_VALUE:
		rc = render_value_wkt(e, (const Google__Protobuf__Value *)m, indent);
		break;
	case WKT_LIST: {
		const Google__Protobuf__ListValue *l = (const Google__Protobuf__ListValue *)m;

		if (!l->n_values)
			rc = strbuf_adds(e->out, "[]");
		else
			rc = render_field(e, d, &d->fields[0], m, indent - 1);
		break;
	}
	case WKT_WRAPPER:
		rc = render_value(e, &d->fields[0], (const char *)m + d->fields[0].offset, indent);
		break;
	default:
		strbuf_addc(e->out, '{');
		rc = render_members(e, m, indent, &count);
		if (count)
			newline(e, indent);
		strbuf_addc(e->out, '}');
		break;
	}
	e->depth--;
	return rc ? rc : e->out->err;
}

int pbjson_render(const ProtobufCMessage *msg, unsigned flags, struct strbuf *out,
		  struct jtree_err *err)
{
	struct ectx e = {.flags = flags, .out = out, .err = err};
	int rc;

	memset(err, 0, sizeof(*err));
	rc = render_message(&e, msg, 0);
	if (out->err || e.path.err) {
		rc = out->err ? out->err : e.path.err;
		snprintf(err->msg, sizeof(err->msg), "%s rendering JSON",
			 rc == -E2BIG ? "output too large" : "out of memory");
	}
	strbuf_release(&e.path);
	return rc;
}

/* ---- Any helpers ---------------------------------------------------------------------------- */

int pbjson_any_pack(const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	Google__Protobuf__Any *any = malloc(sizeof(*any));
	size_t size = protobuf_c_message_get_packed_size(msg);

	*out = NULL;
	if (!any)
		return -ENOMEM;
	google__protobuf__any__init(any);
	any->type_url = malloc(strlen(PBREG_TYPE_URL_PREFIX) + strlen(msg->descriptor->name) + 1);
	any->value.data = malloc(size ? size : 1);
	if (!any->type_url || !any->value.data) {
		free(any->type_url);
		free(any->value.data);
		free(any);
		return -ENOMEM;
	}
	strcpy(any->type_url, PBREG_TYPE_URL_PREFIX);
	strcat(any->type_url, msg->descriptor->name);
	any->value.len = protobuf_c_message_pack(msg, any->value.data);
	*out = &any->base;
	return 0;
}

int pbjson_any_unpack(const ProtobufCMessage *msg, ProtobufCMessage **out, struct jtree_err *err)
{
	const Google__Protobuf__Any *any = (const Google__Protobuf__Any *)msg;
	const ProtobufCMessageDescriptor *d;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	d = any->type_url ? pbreg_find(any->type_url) : NULL;
	if (!d) {
		snprintf(err->msg, sizeof(err->msg), "unknown type \"%s\"",
			 any->type_url ? any->type_url : "");
		return -ENOENT;
	}
	*out = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
	if (!*out) {
		snprintf(err->msg, sizeof(err->msg), "value does not decode as %s", d->name);
		return -EINVAL;
	}
	return 0;
}
