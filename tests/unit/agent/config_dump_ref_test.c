/* Istio's real Envoy config dumps parse into envoy.admin.v3.ConfigDump and render back equal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/jtree.h"
#include "agent/pbjson.h"
#include "tests/lib/tap.h"

#include "envoy/admin/v3/config_dump.pb-c.h"

#define CONFIG_DUMP (&envoy__admin__v3__config_dump__descriptor)

/* Where the reference dumps are: $SHUNT_ISTIO_REFERENCE, or the copy in tests/fixtures (Istio's
 * own files, Apache-2.0, see its README and LICENSE). */
static const char *const ref_dirs[] = {
	"tests/fixtures/istio-reference/xds",
};

static const struct ref {
	const char *file;
	unsigned
		flags; /* PBJSON_OPAQUE_ANY where Istio's own filter types (not Envoy API) appear */
	const char *err; /* NULL: must parse and round-trip */
} refs[] = {
	{"describe-http_config.json", PBJSON_OPAQUE_ANY, NULL},
	{"endpoints-configdump.json", 0, NULL},
	{"proxyconfig-config_dump.json", 0, NULL},
	{"sidecar-listeners-configdump.yaml", PBJSON_OPAQUE_ANY, NULL},
	/* Istio 1.1 wrote an xDS v2 bootstrap into the v3 admin wrapper; v3 dropped the field. */
	{"legacy-v2-productpage-config_dump.json", PBJSON_OPAQUE_ANY,
	 "configs[0].bootstrap.node: unknown field \"build_version\" in envoy.config.core.v3.Node"},
};

/* Types in the modern dumps that are Istio's, not Envoy's: strict parsing names the first. */
static const struct strict {
	const char *file;
	const char *err;
} stricts[] = {
	{"describe-http_config.json",
	 "configs[1].dynamic_active_clusters[0].cluster.filters[0].typed_config: unknown type "
	 "\"type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange\""},
	{"sidecar-listeners-configdump.yaml",
	 "configs[0].dynamic_listeners[0].active_state.listener.filter_chains[0].filters[0]."
	 "typed_config: unknown type \"type.googleapis.com/stats.PluginConfig\""},
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct strbuf sb = STRBUF_INIT;
	char chunk[65536];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		strbuf_add(&sb, chunk, n);
	fclose(f);
	return strbuf_detach(&sb, len);
}

/* proto3 JSON omits empty lists; Envoy printed some anyway. Drops them before comparing. */
static void drop_empty_lists(struct jtree_node *n)
{
	size_t kept = 0;

	if (n->kind == JT_ARRAY) {
		for (size_t i = 0; i < n->len; i++)
			drop_empty_lists(n->u.items[i]);
		return;
	}
	if (n->kind != JT_OBJECT)
		return;
	for (size_t i = 0; i < n->len; i++) {
		struct jtree_node *v = n->u.members[i].value;

		if (v->kind == JT_ARRAY && v->len == 0) {
			tap_diag("  legitimately differs: empty list \"%s\" omitted",
				 n->u.members[i].key);
			continue;
		}
		drop_empty_lists(v);
		n->u.members[kept++] = n->u.members[i];
	}
	n->len = kept;
}

static void test_ref(const char *dir, const struct ref *r)
{
	char path[512];
	char *text;
	size_t len;
	ProtobufCMessage *m;
	struct jtree_err err;
	struct strbuf out = STRBUF_INIT, where = STRBUF_INIT;
	struct jtree *a = NULL, *b = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, r->file);
	text = slurp(path, &len);
	if (!ok(text != NULL, "read %s", r->file))
		return;
	rc = pbjson_parse(text, len, CONFIG_DUMP, r->flags, &m, &err);
	if (r->err) {
		ok(rc == -EINVAL, "%s does not parse as v3", r->file);
		is_str(err.msg, r->err, "  because");
		free(text);
		return;
	}
	if (!ok(rc == 0, "%s parses into envoy.admin.v3.ConfigDump", r->file)) {
		tap_diag("  %s (line %u)", err.msg, err.line);
		free(text);
		return;
	}
	ok(pbjson_render(m, r->flags | PBJSON_PRETTY, &out, &err) == 0, "  and renders");
	ok(jtree_parse(text, len, &a, &err) == 0 && jtree_parse(out.buf, out.len, &b, &err) == 0,
	   "  both are JSON");
	if (a && b) {
		drop_empty_lists((struct jtree_node *)jtree_root(a));
		if (!ok(jtree_equal(jtree_root(a), jtree_root(b), &where),
			"  re-rendered dump equals the original as JSON values"))
			tap_diag("  %s", strbuf_str(&where));
	}
	jtree_free(a);
	jtree_free(b);
	strbuf_release(&out);
	strbuf_release(&where);
	protobuf_c_message_free_unpacked(m, NULL);
	free(text);
}

static void test_strict(const char *dir, const struct strict *s)
{
	char path[512];
	char *text;
	size_t len;
	ProtobufCMessage *m;
	struct jtree_err err;

	snprintf(path, sizeof(path), "%s/%s", dir, s->file);
	text = slurp(path, &len);
	ok(text && pbjson_parse(text, len, CONFIG_DUMP, 0, &m, &err) == -EINVAL,
	   "strict parse of %s stops at an Istio type", s->file);
	is_str(err.msg, s->err, "  naming it");
	free(text);
}

int main(void)
{
	const char *dir = getenv("SHUNT_ISTIO_REFERENCE");

	for (size_t i = 0; !dir && i < sizeof(ref_dirs) / sizeof(ref_dirs[0]); i++)
		if (access(ref_dirs[i], R_OK) == 0)
			dir = ref_dirs[i];
	if (!dir) {
		/* The reference is the spec: missing, it is a failure, never a skip. */
		ok(0, "the Istio reference dumps are present (run from the repo root, or set "
		      "SHUNT_ISTIO_REFERENCE)");
		return done_testing();
	}
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
		test_ref(dir, &refs[i]);
	for (size_t i = 0; i < sizeof(stricts) / sizeof(stricts[0]); i++)
		test_strict(dir, &stricts[i]);
	return done_testing();
}
