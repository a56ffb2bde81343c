/* Tests agent/admin.c's query parsing and agent/probe.c's report of what is missing. */
#include <stdlib.h>

#include "agent/admin.h"
#include "agent/probe.h"
#include "tests/lib/tap.h"

static const struct {
	const char *query, *name, *want; /* want NULL: absent */
} qcases[] = {
	{"pid=12", "pid", "12"},
	{"a=1&pid=12&b=2", "pid", "12"},
	{"pidx=3&pid=4", "pid", "4"},
	{"xpid=3", "pid", NULL},
	{"pid", "pid", NULL},
	{"pid=", "pid", ""},
	{"", "pid", NULL},
	{"level=debug", "level", "debug"},
	{"format=json&format=text", "format", "json"},
};

int main(void)
{
	char buf[16];

	for (size_t i = 0; i < sizeof(qcases) / sizeof(qcases[0]); i++) {
		bool found = admin_query_get(qcases[i].query, qcases[i].name, buf, sizeof(buf));

		if (!qcases[i].want)
			ok(!found, "\"%s\": %s absent", qcases[i].query, qcases[i].name);
		else
			ok(found && strcmp(buf, qcases[i].want) == 0, "\"%s\": %s = \"%s\"",
			   qcases[i].query, qcases[i].name, qcases[i].want);
	}
	ok(admin_query_get("pid=123456789012345678901234", "pid", buf, 8) && strlen(buf) == 7,
	   "a long value is truncated to the buffer");

	struct probe_result r;
	char missing[512];

	memset(&r, 0, sizeof(r));
	for (int f = 0; f < PROBE__MAX; f++)
		r.have[f] = true;
	is_int(probe_missing(&r, "inbound", missing, sizeof(missing)), 0, "nothing missing");
	is_str(missing, "", "and the report is empty");
	r.have[PROBE_PROG_SK_LOOKUP] = false;
	r.hidden[PROBE_PROG_SK_LOOKUP] = true;
	r.have[PROBE_BTF] = false;
	r.have[PROBE_PROG_SK_MSG] = false;
	is_int(probe_missing(&r, "inbound", missing, sizeof(missing)), 2,
	       "inbound misses sk_lookup and BTF (needed by every path)");
	is_str(missing,
	       "kernel BTF (/sys/kernel/btf/vmlinux), program type sk_lookup (hidden by "
	       "SHUNT_PROBE_HIDE)",
	       "the report names them, and says which were hidden on purpose");
	is_int(probe_missing(&r, "sockmap", missing, sizeof(missing)), 2,
	       "sockmap misses sk_msg and BTF");

	setenv("SHUNT_PROBE_HIDE", "prog_sk_msg,helper_sk_assign", 1);
	probe_kernel(&r);
	ok(!r.have[PROBE_PROG_SK_MSG] && r.hidden[PROBE_PROG_SK_MSG],
	   "SHUNT_PROBE_HIDE hides sk_msg");
	ok(!r.have[PROBE_HELPER_SK_ASSIGN] && r.hidden[PROBE_HELPER_SK_ASSIGN],
	   "and bpf_sk_assign");
	ok(!r.hidden[PROBE_PROG_SK_LOOKUP], "and nothing else");
	return done_testing();
}
