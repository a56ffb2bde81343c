/* Formats access-log lines the way Istio's default (text and JSON) access logs read. */
#include "proxy/accesslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"

void accesslog_time(char *buf, size_t len, const struct timespec *ts)
{
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
}

/* Copies n bytes of p to *at (moving it on), NUL-terminated; NULL stays NULL. */
static const char *dup_into(char **at, const char *p, size_t n)
{
	char *d = *at;

	if (!p)
		return NULL;
	memcpy(d, p, n);
	d[n] = '\0';
	*at += n + 1;
	return d;
}

static size_t str_size(const char *p)
{
	return p ? strlen(p) + 1 : 0;
}

struct accesslog_http *accesslog_http_dup(const struct accesslog_http *e)
{
	const struct accesslog_span *sp[] = {&e->method, &e->path,	 &e->authority,
					     &e->xff,	 &e->user_agent, &e->request_id};
	const char *const *st[] = {&e->protocol,	  &e->flags,
				   &e->details,		  &e->failure_reason,
				   &e->upstream_host,	  &e->upstream_cluster,
				   &e->upstream_local,	  &e->downstream_local,
				   &e->downstream_remote, &e->route_name};
	size_t size = sizeof(*e);
	struct accesslog_http *d;
	char *at;

	for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++)
		size += sp[i]->p ? sp[i]->len + 1 : 0;
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		size += str_size(*st[i]);
	d = malloc(size);
	if (!d)
		return NULL;
	*d = *e;
	at = (char *)(d + 1);
	/* The same fields of the copy, by offset from the original. */
	for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++) {
		struct accesslog_span *o =
			(struct accesslog_span *)((char *)d +
						  ((const char *)sp[i] - (const char *)e));

		o->p = dup_into(&at, sp[i]->p, sp[i]->len);
	}
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		const char **o =
			(const char **)((char *)d + ((const char *)st[i] - (const char *)e));

		*o = dup_into(&at, *st[i], *st[i] ? strlen(*st[i]) : 0);
	}
	return d;
}

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

void accesslog_tcp_format(struct strbuf *sb, const struct accesslog_tcp *e, bool json)
{
	char start[40];

	accesslog_time(start, sizeof(start), &e->start);
	if (!json) {
		strbuf_addf(
			sb,
			"[%s] \"- - -\" 0 %s - %s \"%s\" %llu %llu %llu - \"-\" \"-\" \"-\" \"-\" "
			"\"%s\" %s %s %s %s - -\n",
			start, dash(e->flags), dash(e->details), dash(e->failure_reason),
			(unsigned long long)e->bytes_received, (unsigned long long)e->bytes_sent,
			(unsigned long long)e->duration_ms, dash(e->upstream_host),
			dash(e->upstream_cluster), dash(e->upstream_local),
			dash(e->downstream_local), dash(e->downstream_remote));
		return;
	}
	struct json_writer w;

	jw_init(&w, sb, false);
	jw_obj_begin(&w);
	jw_key(&w, "start_time");
	jw_str(&w, start);
	jw_key(&w, "protocol");
	jw_null(&w);
	jw_key(&w, "response_code");
	jw_u64(&w, 0);
	jw_key(&w, "response_flags");
	jw_str(&w, dash(e->flags));
	jw_key(&w, "connection_termination_details");
	jw_str(&w, dash(e->details));
	jw_key(&w, "upstream_transport_failure_reason");
	jw_str(&w, dash(e->failure_reason));
	jw_key(&w, "bytes_received");
	jw_u64(&w, e->bytes_received);
	jw_key(&w, "bytes_sent");
	jw_u64(&w, e->bytes_sent);
	jw_key(&w, "duration");
	jw_u64(&w, e->duration_ms);
	jw_key(&w, "upstream_host");
	jw_str(&w, dash(e->upstream_host));
	jw_key(&w, "upstream_cluster");
	jw_str(&w, dash(e->upstream_cluster));
	jw_key(&w, "upstream_local_address");
	jw_str(&w, dash(e->upstream_local));
	jw_key(&w, "downstream_local_address");
	jw_str(&w, dash(e->downstream_local));
	jw_key(&w, "downstream_remote_address");
	jw_str(&w, dash(e->downstream_remote));
	jw_obj_end(&w);
	strbuf_addc(sb, '\n');
}

/* Writes a request value as a log field: "-" when absent; quotes and control bytes escaped
 * so that a request cannot forge log fields or lines. */
static void put_span(struct strbuf *sb, struct accesslog_span v)
{
	if (!v.p || !v.len) {
		strbuf_addc(sb, '-');
		return;
	}
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (c == '"' || c == '\\')
			strbuf_addf(sb, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			strbuf_addf(sb, "\\x%02x", c);
		else
			strbuf_addc(sb, (char)c);
	}
}

static void json_span(struct json_writer *w, const char *key, struct accesslog_span v)
{
	jw_key(w, key);
	if (v.p && v.len)
		jw_strn(w, v.p, v.len);
	else
		jw_null(w);
}

void accesslog_http_format(struct strbuf *sb, const struct accesslog_http *e, bool json)
{
	char start[40], st[24];

	accesslog_time(start, sizeof(start), &e->start);
	if (e->upstream_service_time_ms >= 0)
		snprintf(st, sizeof(st), "%lld", (long long)e->upstream_service_time_ms);
	else
		snprintf(st, sizeof(st), "-");
	if (!json) {
		strbuf_addf(sb, "[%s] \"", start);
		put_span(sb, e->method);
		strbuf_addc(sb, ' ');
		put_span(sb, e->path);
		strbuf_addf(sb, " %s\" %d %s %s - \"%s\" %llu %llu %llu %s \"", dash(e->protocol),
			    e->status, dash(e->flags), dash(e->details), dash(e->failure_reason),
			    (unsigned long long)e->bytes_received,
			    (unsigned long long)e->bytes_sent, (unsigned long long)e->duration_ms,
			    st);
		put_span(sb, e->xff);
		strbuf_adds(sb, "\" \"");
		put_span(sb, e->user_agent);
		strbuf_adds(sb, "\" \"");
		put_span(sb, e->request_id);
		strbuf_adds(sb, "\" \"");
		put_span(sb, e->authority);
		strbuf_addf(sb, "\" \"%s\" %s %s %s %s - %s\n", dash(e->upstream_host),
			    dash(e->upstream_cluster), dash(e->upstream_local),
			    dash(e->downstream_local), dash(e->downstream_remote),
			    dash(e->route_name));
		return;
	}
	struct json_writer w;

	jw_init(&w, sb, false);
	jw_obj_begin(&w);
	jw_key(&w, "start_time");
	jw_str(&w, start);
	json_span(&w, "method", e->method);
	json_span(&w, "path", e->path);
	jw_key(&w, "protocol");
	jw_str(&w, dash(e->protocol));
	jw_key(&w, "response_code");
	jw_i64(&w, e->status);
	jw_key(&w, "response_flags");
	jw_str(&w, dash(e->flags));
	jw_key(&w, "response_code_details");
	jw_str(&w, dash(e->details));
	jw_key(&w, "upstream_transport_failure_reason");
	jw_str(&w, dash(e->failure_reason));
	jw_key(&w, "bytes_received");
	jw_u64(&w, e->bytes_received);
	jw_key(&w, "bytes_sent");
	jw_u64(&w, e->bytes_sent);
	jw_key(&w, "duration");
	jw_u64(&w, e->duration_ms);
	jw_key(&w, "upstream_service_time");
	if (e->upstream_service_time_ms >= 0)
		jw_i64(&w, e->upstream_service_time_ms);
	else
		jw_null(&w);
	json_span(&w, "x_forwarded_for", e->xff);
	json_span(&w, "user_agent", e->user_agent);
	json_span(&w, "request_id", e->request_id);
	json_span(&w, "authority", e->authority);
	jw_key(&w, "upstream_host");
	jw_str(&w, dash(e->upstream_host));
	jw_key(&w, "upstream_cluster");
	jw_str(&w, dash(e->upstream_cluster));
	jw_key(&w, "upstream_local_address");
	jw_str(&w, dash(e->upstream_local));
	jw_key(&w, "downstream_local_address");
	jw_str(&w, dash(e->downstream_local));
	jw_key(&w, "downstream_remote_address");
	jw_str(&w, dash(e->downstream_remote));
	jw_key(&w, "route_name");
	jw_str(&w, dash(e->route_name));
	jw_obj_end(&w);
	strbuf_addc(sb, '\n');
}
