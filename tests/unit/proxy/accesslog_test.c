/* Tests proxy/accesslog.c: Istio's default TCP line and the JSON form, byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "proxy/accesslog.h"
#include "tests/lib/tap.h"

/* A stream logged after its buffers are gone (a tunnel): the copy says what the original did. */
static void test_dup(void)
{
	char method[] = "GET", path[] = "/chat", host[] = "10.0.0.1:80", up[] = "10.0.0.2:8080";
	struct accesslog_http e = {
		.start = {.tv_sec = 1764036672, .tv_nsec = 345678901},
		.method = {method, 3},
		.path = {path, 5},
		.authority = {host, strlen(host)},
		.protocol = "HTTP/1.1",
		.status = 101,
		.flags = "-",
		.details = "via_upstream",
		.bytes_received = 10,
		.upstream_service_time_ms = 3,
		.upstream_host = up,
		.upstream_cluster = "ws",
		.downstream_local = "10.0.0.1:80",
		.downstream_remote = "127.0.0.1:5555",
	};
	struct strbuf a = {0}, b = {0};
	struct accesslog_http *d = accesslog_http_dup(&e);

	ok(d != NULL, "an HTTP entry is copied");
	accesslog_http_format(&a, &e, false);
	memset(method, 'X', 3);
	memset(path, 'X', 5);
	memset(host, 'X', strlen(host));
	memset(up, 'X', strlen(up));
	if (d)
		accesslog_http_format(&b, d, false);
	is_str(strbuf_str(&b), strbuf_str(&a),
	       "the copy formats as the original did, after the original's bytes changed");
	ok(d && d->xff.p == NULL && d->user_agent.p == NULL && d->failure_reason == NULL,
	   "absent fields stay absent");
	free(d);
	strbuf_release(&a);
	strbuf_release(&b);
}

int main(void)
{
	struct accesslog_tcp e = {
		.start = {.tv_sec = 1764036672, .tv_nsec = 345678901},
		.duration_ms = 12,
		.bytes_received = 6,
		.bytes_sent = 1024,
		.flags = "-",
		.details = NULL,
		.failure_reason = "",
		.upstream_host = "10.44.1.27:80",
		.upstream_cluster = "PassthroughCluster",
		.upstream_local = "10.44.1.23:37652",
		.downstream_local = "10.0.45.184:80",
		.downstream_remote = "127.0.0.1:46520",
	};
	struct strbuf sb = {0};
	char t[40];

	accesslog_time(t, sizeof(t), &e.start);
	is_str(t, "2025-11-25T02:11:12.345Z", "START_TIME as Envoy prints it (UTC, milliseconds)");

	accesslog_tcp_format(&sb, &e, false);
	is_str(strbuf_str(&sb),
	       "[2025-11-25T02:11:12.345Z] \"- - -\" 0 - - - \"-\" 6 1024 12 - \"-\" \"-\" \"-\" "
	       "\"-\" "
	       "\"10.44.1.27:80\" PassthroughCluster 10.44.1.23:37652 10.0.45.184:80 "
	       "127.0.0.1:46520 - -\n",
	       "TCP line in Istio's default format (empty and NULL fields print as -)");

	strbuf_reset(&sb);
	e.flags = "UF";
	e.details = "upstream_connect_error";
	e.failure_reason = "Connection refused";
	e.upstream_local = NULL;
	accesslog_tcp_format(&sb, &e, false);
	is_str(strbuf_str(&sb),
	       "[2025-11-25T02:11:12.345Z] \"- - -\" 0 UF - upstream_connect_error "
	       "\"Connection refused\" 6 1024 12 - \"-\" \"-\" \"-\" \"-\" \"10.44.1.27:80\" "
	       "PassthroughCluster - 10.0.45.184:80 127.0.0.1:46520 - -\n",
	       "a failed connect carries UF, the details and the reason");

	strbuf_reset(&sb);
	accesslog_tcp_format(&sb, &e, true);
	is_str(strbuf_str(&sb),
	       "{\"start_time\":\"2025-11-25T02:11:12.345Z\",\"protocol\":null,\"response_code\":0,"
	       "\"response_flags\":\"UF\",\"connection_termination_details\":"
	       "\"upstream_connect_error\",\"upstream_transport_failure_reason\":"
	       "\"Connection refused\",\"bytes_received\":6,\"bytes_sent\":1024,\"duration\":12,"
	       "\"upstream_host\":\"10.44.1.27:80\",\"upstream_cluster\":\"PassthroughCluster\","
	       "\"upstream_local_address\":\"-\",\"downstream_local_address\":\"10.0.45.184:80\","
	       "\"downstream_remote_address\":\"127.0.0.1:46520\"}\n",
	       "JSON form with Istio's field names");
	strbuf_release(&sb);
	test_dup();
	return done_testing();
}
