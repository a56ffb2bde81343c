/* Builds the proxy's config snapshot from the active xDS resources (see xds_snapshot.h). */
#include "agent/xds_snapshot.h"
#include "agent/bootstrap.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "agent/pbhash.h"
#include "agent/pbjson.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "proxy/rbac.h"
#include "proxy/tls.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "google/protobuf/any.pb-c.h"

/* Envoy still honours the deprecated forms (header match shorthands, append, the cluster's own
 * HTTP options), so this file reads them on purpose. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Listener__V3__FilterChain FilterChain;
typedef Envoy__Config__Listener__V3__FilterChainMatch FilterChainMatch;
typedef Envoy__Config__Core__V3__CidrRange CidrRange;
typedef Envoy__Config__Core__V3__Address Address;
typedef Envoy__Config__Core__V3__SocketAddress SocketAddress;
typedef Envoy__Config__Core__V3__HeaderValueOption HeaderValueOption;
typedef Envoy__Config__Core__V3__TransportSocket TransportSocket;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Config__Route__V3__Route Route;
typedef Envoy__Config__Route__V3__RouteMatch RouteMatch;
typedef Envoy__Config__Route__V3__RouteAction RouteAction;
typedef Envoy__Config__Route__V3__RetryPolicy RetryPolicy;
typedef Envoy__Config__Route__V3__HeaderMatcher HeaderMatcher;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment ClusterLoadAssignment;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;
typedef Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions UpstreamHttpOptions;
typedef Envoy__Config__Core__V3__DataSource DataSource;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext DownTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext UpTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters TlsParams;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
	ValidationContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher SanMatcher;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Google__Protobuf__Duration Duration;
typedef Google__Protobuf__Any Any;

#define HCM_TYPE	      "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define TCP_PROXY_TYPE	      "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#define UPSTREAM_HTTP_OPTIONS "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
#define PATH_MAX_LEN	      768

struct tsm;

struct sctx {
	const struct xds_config *cfg;
	struct tsm *tsm; /* the current cluster's transport_socket_matches */
	uint32_t ntsm;
	bool want_h2;	/* the current cluster speaks HTTP/2: TLS offers h2 unless told otherwise */
	bool want_auto; /* ... or auto_config: TLS offers h2 and http/1.1 */
	struct {
		const char *name;
		struct px_tls_pem pem;
	} files[XDS_TLS_FILE_CACHE]; /* certificate files read for this snapshot */
	uint32_t nfiles;
	struct {
		unsigned char digest[32]; /* of everything but the SAN matchers (tls_cfg_digest) */
		struct px_tls_ctx *base;
	} tls_bases[XDS_TLS_BASE_CACHE]; /* client contexts whose SSL_CTX others share */
	uint32_t ntls_bases;
	const struct xds_dns *dns; /* NULL: names stay unresolved */
	struct px_snapshot *s;
	struct arena *a;
	const char *who_noun, *who_name;
	char path[PATH_MAX_LEN];
	size_t plen;
	struct jtree_err *err;
};

static int serr(struct sctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int serr(struct sctx *x, const char *fmt, ...)
{
	char msg[JTREE_ERR_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->plen)
		snprintf(x->err->msg, sizeof(x->err->msg), "%s \"%s\": %s: %s", x->who_noun,
			 x->who_name, x->path, msg);
	else
		snprintf(x->err->msg, sizeof(x->err->msg), "%s \"%s\": %s", x->who_noun,
			 x->who_name, msg);
	return -EINVAL;
}

static int snomem(struct sctx *x)
{
	snprintf(x->err->msg, sizeof(x->err->msg), "%s \"%s\": out of memory", x->who_noun,
		 x->who_name);
	return -ENOMEM;
}

/* Appends ".name" (or "name" at the start) to the error path; returns the mark to pop to. */
static size_t spush(struct sctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t spush(struct sctx *x, const char *fmt, ...)
{
	size_t mark = x->plen;
	va_list ap;
	int n;

	if (x->plen && x->plen + 1 < sizeof(x->path))
		x->path[x->plen++] = '.';
	va_start(ap, fmt);
	n = vsnprintf(x->path + x->plen, sizeof(x->path) - x->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		x->plen += (size_t)n < sizeof(x->path) - x->plen ? (size_t)n
								 : sizeof(x->path) - x->plen - 1;
	return mark;
}

static void spop(struct sctx *x, size_t mark)
{
	x->plen = mark;
	x->path[mark] = 0;
}

static void sbegin(struct sctx *x, const char *noun, const char *name)
{
	x->who_noun = noun;
	x->who_name = name ? name : "";
	spop(x, 0);
}

static const char *sdup(struct sctx *x, const char *s)
{
	return s && *s ? arena_strdup(x->a, s) : NULL;
}

static char *sdup_lower(struct sctx *x, const char *s)
{
	char *d = arena_strdup(x->a, s ? s : "");

	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static uint32_t ms_of(const Duration *d)
{
	int64_t ms;

	if (!d || d->seconds < 0)
		return 0;
	ms = d->seconds * 1000 + d->nanos / 1000000;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* A Duration that is set but zero: Envoy reads it as "disabled". Mapped to 1 ms less than
 * "never" would be wrong, so callers that support "none" check this first. */
static int is_zero_duration(const Duration *d)
{
	return d && d->seconds == 0 && d->nanos == 0;
}

static const char *type_name_of(const char *url)
{
	const char *slash = url ? strrchr(url, '/') : NULL;

	return slash ? slash + 1 : (url ? url : "");
}

static int unpack(struct sctx *x, const Any *any, const char *type, ProtobufCMessage **out)
{
	struct jtree_err e;
	int rc;

	if (strcmp(type_name_of(any->type_url), type))
		return serr(x, "expected %s, got \"%s\"", type, any->type_url ? any->type_url : "");
	rc = pbjson_any_unpack(&any->base, out, &e);
	if (rc == -ENOMEM)
		return snomem(x);
	if (rc)
		return serr(x, "%s", e.msg);
	return 0;
}

/* ---- addresses ------------------------------------------------------------------------------ */

static int socket_address(struct sctx *x, const SocketAddress *sa, struct shunt_addr *addr,
			  __u16 *port, int need_port)
{
	if (!sa->address || addr_parse(addr, sa->address))
		return serr(x, "address: \"%s\" is not an IP address",
			    sa->address ? sa->address : "");
	if (sa->port_specifier_case ==
	    ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_NAMED_PORT)
		return serr(x, "named_port is not supported");
	if (need_port && (sa->port_value < 1 || sa->port_value > 65535))
		return serr(x, "port_value: %u is out of range 1..65535", sa->port_value);
	if (port)
		*port = (__u16)sa->port_value;
	return 0;
}

static int address(struct sctx *x, const Address *a, const char *field, struct shunt_addr *addr,
		   __u16 *port)
{
	size_t mark = spush(x, "%s", field);
	int rc;

	if (!a || a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
		return serr(x, "only socket_address is supported");
	spush(x, "socket_address");
	rc = socket_address(x, a->socket_address, addr, port, 1);
	if (!rc)
		spop(x, mark);
	return rc;
}

static int cidr(struct sctx *x, const CidrRange *c, struct px_cidr *out)
{
	struct shunt_addr probe;
	uint32_t len;

	if (!c || !c->address_prefix || addr_parse(&probe, c->address_prefix))
		return serr(x, "address_prefix: \"%s\" is not an IP address",
			    c && c->address_prefix ? c->address_prefix : "");
	len = c->prefix_len ? c->prefix_len->value : (strchr(c->address_prefix, ':') ? 128 : 32);
	if (px_cidr_parse(out, c->address_prefix, len))
		return serr(x, "prefix_len: %u is out of range", len);
	return 0;
}

static int cidrs(struct sctx *x, CidrRange **in, size_t n, const char *field, struct px_cidr **out,
		 uint32_t *nout)
{
	if (!n)
		return 0;
	*out = arena_new(x->a, struct px_cidr, n);
	if (!*out)
		return snomem(x);
	for (size_t i = 0; i < n; i++) {
		size_t mark = spush(x, "%s[%zu]", field, i);
		int rc = cidr(x, in[i], &(*out)[i]);

		if (rc)
			return rc;
		spop(x, mark);
	}
	*nout = (uint32_t)n;
	return 0;
}

static const char **strv(struct sctx *x, char **in, size_t n, uint32_t *nout, int lower)
{
	const char **v;

	*nout = 0;
	if (!n)
		return NULL;
	v = arena_new(x->a, const char *, n);
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		v[i] = lower ? sdup_lower(x, in[i]) : arena_strdup(x->a, in[i] ? in[i] : "");
		if (!v[i])
			return NULL;
	}
	*nout = (uint32_t)n;
	return v;
}

/* ---- routes --------------------------------------------------------------------------------- */

/* Per-route configuration of filters the proxy does not run would be silently dropped. */
static int per_filter_config_ok(struct sctx *x, const char *key)
{
	if (!strcmp(key, "envoy.filters.http.cors") || !strcmp(key, "envoy.filters.http.fault") ||
	    !strcmp(key, "envoy.filters.http.rbac"))
		return serr(x, "typed_per_filter_config[\"%s\"] is not supported", key);
	return 0;
}

static int header_mutation(struct sctx *x, HeaderValueOption **add, size_t nadd, char **remove,
			   size_t nremove, struct px_header_mutation *m)
{
	if (nadd) {
		m->add = arena_new(x->a, struct px_header_value, nadd);
		if (!m->add)
			return snomem(x);
	}
	for (size_t i = 0; i < nadd; i++) {
		const HeaderValueOption *o = add[i];
		struct px_header_value *h = &m->add[i];

		if (!o->header || !o->header->key || !*o->header->key)
			return serr(x, "headers_to_add[%zu].header.key is required", i);
		h->name = sdup_lower(x, o->header->key);
		h->value = arena_strdup(x->a, o->header->value ? o->header->value : "");
		if (!h->name || !h->value)
			return snomem(x);
		switch (o->append_action) {
		case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__ADD_IF_ABSENT:
			h->append = PX_ADD_IF_ABSENT;
			break;
		case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD:
			h->append = PX_OVERWRITE_IF_EXISTS_OR_ADD;
			break;
		case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD:
			/* The deprecated append: false meant overwrite. */
			h->append = o->append && !o->append->value ? PX_OVERWRITE_IF_EXISTS_OR_ADD
								   : PX_APPEND_IF_EXISTS_OR_ADD;
			break;
		default:
			return serr(x, "headers_to_add[%zu].append_action: %d is not supported", i,
				    (int)o->append_action);
		}
	}
	m->nadd = (uint32_t)nadd;
	if (nremove) {
		m->remove = strv(x, remove, nremove, &m->nremove, 1);
		if (!m->remove)
			return snomem(x);
	}
	return 0;
}

static int string_matcher(struct sctx *x, const StringMatcher *sm, struct px_string_matcher *m)
{
	m->ignore_case = sm->ignore_case;
	switch (sm->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
		m->kind = PX_STR_EXACT;
		m->value = arena_strdup(x->a, sm->exact);
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
		m->kind = PX_STR_PREFIX;
		m->value = arena_strdup(x->a, sm->prefix);
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
		m->kind = PX_STR_SUFFIX;
		m->value = arena_strdup(x->a, sm->suffix);
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
		m->kind = PX_STR_CONTAINS;
		m->value = arena_strdup(x->a, sm->contains);
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
		m->kind = PX_STR_REGEX;
		m->value = arena_strdup(x->a, sm->safe_regex ? sm->safe_regex->regex : "");
		break;
	default:
		return serr(x, "a string matcher needs exact, prefix, suffix, contains or "
			       "safe_regex");
	}
	if (!m->value)
		m->value = arena_strdup(x->a, "");
	return m->value ? 0 : snomem(x);
}

static int header_matcher(struct sctx *x, const HeaderMatcher *hm, struct px_header_matcher *h)
{
	struct px_string_matcher *s = &h->str;

	h->name = sdup_lower(x, hm->name);
	if (!h->name)
		return snomem(x);
	h->invert = hm->invert_match;
	h->treat_missing_as_empty = hm->treat_missing_header_as_empty;
	h->kind = PX_HDR_STRING;
	switch (hm->header_match_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
		return string_matcher(x, hm->string_match, s);
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
		s->kind = PX_STR_EXACT;
		s->value = arena_strdup(x->a, hm->exact_match);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
		s->kind = PX_STR_PREFIX;
		s->value = arena_strdup(x->a, hm->prefix_match);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
		s->kind = PX_STR_SUFFIX;
		s->value = arena_strdup(x->a, hm->suffix_match);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
		s->kind = PX_STR_CONTAINS;
		s->value = arena_strdup(x->a, hm->contains_match);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
		s->kind = PX_STR_REGEX;
		s->value =
			arena_strdup(x->a, hm->safe_regex_match ? hm->safe_regex_match->regex : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
		h->kind = PX_HDR_PRESENT;
		h->present = hm->present_match;
		return 0;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
		h->kind = PX_HDR_RANGE;
		h->range_start = hm->range_match->start;
		h->range_end = hm->range_match->end;
		return 0;
	default:
		/* No specifier: Envoy matches on presence. */
		h->kind = PX_HDR_PRESENT;
		h->present = true;
		return 0;
	}
	if (!s->value)
		s->value = arena_strdup(x->a, "");
	return s->value ? 0 : snomem(x);
}

/* ---- RBAC ----------------------------------------------------------------------------------- */

typedef Envoy__Config__Rbac__V3__RBAC RbacRules;
typedef Envoy__Config__Rbac__V3__Permission RbacPermission;
typedef Envoy__Config__Rbac__V3__Principal RbacPrincipal;
typedef Envoy__Extensions__Filters__Http__Rbac__V3__RBAC HttpRbac;
typedef Envoy__Extensions__Filters__Network__Rbac__V3__RBAC NetRbac;

#define HTTP_RBAC_TYPE		 "envoy.extensions.filters.http.rbac.v3.RBAC"
#define HTTP_RBAC_PER_ROUTE_TYPE "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
#define NET_RBAC_TYPE		 "envoy.extensions.filters.network.rbac.v3.RBAC"
#define RBAC_MAX_DEPTH		 32 /* nesting of and/or/not rules; deeper is refused */

static int rbac_cidr(struct sctx *x, const CidrRange *c, const char *field, struct px_cidr *out)
{
	size_t mark = spush(x, "%s", field);
	int rc = cidr(x, c, out);

	if (!rc)
		spop(x, mark);
	return rc;
}

/* A matcher's regex (if it has one) compiled now, so that a bad one is named by its path (the
 * snapshot frees it: the config is on its list before its tree is built). */
static int rbac_regex(struct sctx *x, struct px_string_matcher *m)
{
	const char *err = NULL;

	if (px_string_matcher_prepare(x->a, m, &err))
		return serr(x, "%s", err ? err : "the regex does not compile");
	return 0;
}

/* A string matcher of an RBAC tree. */
static int rbac_string(struct sctx *x, const StringMatcher *sm, struct px_string_matcher *m)
{
	int rc = string_matcher(x, sm, m);

	return rc ? rc : rbac_regex(x, m);
}

static int rbac_header(struct sctx *x, const HeaderMatcher *hm, struct px_header_matcher *h)
{
	size_t mark = spush(x, "header");
	int rc = header_matcher(x, hm, h);

	if (!rc && h->kind == PX_HDR_STRING)
		rc = rbac_regex(x, &h->str);
	if (!rc)
		spop(x, mark);
	return rc;
}

static int rbac_path(struct sctx *x, const Envoy__Type__Matcher__V3__PathMatcher *pm,
		     struct px_string_matcher *m)
{
	size_t mark = spush(x, "url_path");
	int rc;

	if (!pm || pm->rule_case != ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH || !pm->path)
		return serr(x, "needs path");
	spush(x, "path");
	rc = rbac_string(x, pm->path, m);
	if (!rc)
		spop(x, mark);
	return rc;
}

static int rbac_permission(struct sctx *x, const RbacPermission *in, struct px_rbac_node *n,
			   int depth);

static int rbac_permission_set(struct sctx *x, const Envoy__Config__Rbac__V3__Permission__Set *set,
			       const char *field, struct px_rbac_node *n, int depth)
{
	size_t mark = spush(x, "%s", field);

	if (!set || !set->n_rules)
		return serr(x, "needs at least one rule");
	n->set.v = arena_new(x->a, struct px_rbac_node, set->n_rules);
	if (!n->set.v)
		return snomem(x);
	n->set.n = (uint32_t)set->n_rules;
	for (size_t i = 0; i < set->n_rules; i++) {
		size_t m2 = spush(x, "rules[%zu]", i);
		int rc = rbac_permission(x, set->rules[i], &n->set.v[i], depth + 1);

		if (rc)
			return rc;
		spop(x, m2);
	}
	spop(x, mark);
	return 0;
}

static int rbac_permission(struct sctx *x, const RbacPermission *in, struct px_rbac_node *n,
			   int depth)
{
	size_t mark;
	int rc = 0;

	if (depth > RBAC_MAX_DEPTH)
		return serr(x, "rules nest deeper than %d", RBAC_MAX_DEPTH);
	if (!in)
		return serr(x, "a permission needs a rule");
	switch (in->rule_case) {
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY:
		if (!in->any)
			return serr(x, "any: false matches nothing and is not a valid rule");
		n->kind = PX_RBAC_ANY;
		return 0;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES:
		n->kind = PX_RBAC_AND;
		return rbac_permission_set(x, in->and_rules, "and_rules", n, depth);
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES:
		n->kind = PX_RBAC_OR;
		return rbac_permission_set(x, in->or_rules, "or_rules", n, depth);
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE:
		n->kind = PX_RBAC_NOT;
		n->negated = arena_new(x->a, struct px_rbac_node, 1);
		if (!n->negated)
			return snomem(x);
		mark = spush(x, "not_rule");
		rc = rbac_permission(x, in->not_rule, n->negated, depth + 1);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER:
		n->kind = PX_RBAC_HEADER;
		return rbac_header(x, in->header, &n->header);
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH:
		n->kind = PX_RBAC_URL_PATH;
		return rbac_path(x, in->url_path, &n->str);
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP:
		n->kind = PX_RBAC_DST_IP;
		return rbac_cidr(x, in->destination_ip, "destination_ip", &n->cidr);
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT:
		if (in->destination_port > 65535)
			return serr(x, "destination_port: %u is out of range",
				    in->destination_port);
		n->kind = PX_RBAC_DST_PORT;
		n->ports.lo = in->destination_port;
		n->ports.hi = in->destination_port + 1;
		return 0;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT_RANGE: {
		const Envoy__Type__V3__Int32Range *r = in->destination_port_range;

		if (!r || r->start < 0 || r->end > 65536 || r->start > r->end)
			return serr(x, "destination_port_range: [%d, %d) is not a port range",
				    r ? r->start : 0, r ? r->end : 0);
		n->kind = PX_RBAC_DST_PORT;
		n->ports.lo = (uint32_t)r->start;
		n->ports.hi = (uint32_t)r->end;
		return 0;
	}
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_REQUESTED_SERVER_NAME:
		n->kind = PX_RBAC_SNI;
		mark = spush(x, "requested_server_name");
		rc = in->requested_server_name ? rbac_string(x, in->requested_server_name, &n->str)
					       : serr(x, "needs a string matcher");
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA:
		return serr(x, "metadata is not supported");
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_MATCHER:
		return serr(x, "matcher is not supported");
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URI_TEMPLATE:
		return serr(x, "uri_template is not supported");
	default:
		return serr(x, "a permission needs a rule");
	}
	if (!rc)
		spop(x, mark);
	return rc;
}

static int rbac_principal(struct sctx *x, const RbacPrincipal *in, struct px_rbac_node *n,
			  int depth);

static int rbac_principal_set(struct sctx *x, const Envoy__Config__Rbac__V3__Principal__Set *set,
			      const char *field, struct px_rbac_node *n, int depth)
{
	size_t mark = spush(x, "%s", field);

	if (!set || !set->n_ids)
		return serr(x, "needs at least one id");
	n->set.v = arena_new(x->a, struct px_rbac_node, set->n_ids);
	if (!n->set.v)
		return snomem(x);
	n->set.n = (uint32_t)set->n_ids;
	for (size_t i = 0; i < set->n_ids; i++) {
		size_t m2 = spush(x, "ids[%zu]", i);
		int rc = rbac_principal(x, set->ids[i], &n->set.v[i], depth + 1);

		if (rc)
			return rc;
		spop(x, m2);
	}
	spop(x, mark);
	return 0;
}

static int rbac_principal(struct sctx *x, const RbacPrincipal *in, struct px_rbac_node *n,
			  int depth)
{
	size_t mark;
	int rc = 0;

	if (depth > RBAC_MAX_DEPTH)
		return serr(x, "ids nest deeper than %d", RBAC_MAX_DEPTH);
	if (!in)
		return serr(x, "a principal needs an identifier");
	switch (in->identifier_case) {
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY:
		if (!in->any)
			return serr(x, "any: false matches nothing and is not a valid id");
		n->kind = PX_RBAC_ANY;
		return 0;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS:
		n->kind = PX_RBAC_AND;
		return rbac_principal_set(x, in->and_ids, "and_ids", n, depth);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS:
		n->kind = PX_RBAC_OR;
		return rbac_principal_set(x, in->or_ids, "or_ids", n, depth);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID:
		n->kind = PX_RBAC_NOT;
		n->negated = arena_new(x->a, struct px_rbac_node, 1);
		if (!n->negated)
			return snomem(x);
		mark = spush(x, "not_id");
		rc = rbac_principal(x, in->not_id, n->negated, depth + 1);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED:
		n->kind = PX_RBAC_AUTHENTICATED;
		/* No principal_name: any authenticated peer, as Envoy reads it. */
		if (!in->authenticated || !in->authenticated->principal_name)
			return 0;
		n->has_str = true;
		mark = spush(x, "authenticated.principal_name");
		rc = rbac_string(x, in->authenticated->principal_name, &n->str);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_SOURCE_IP:
		/* Deprecated: the connection's remote address (no XFF), which without proxy
		 * protocol is the direct peer. */
		n->kind = PX_RBAC_DIRECT_REMOTE_IP;
		return rbac_cidr(x, in->source_ip, "source_ip", &n->cidr);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP:
		n->kind = PX_RBAC_DIRECT_REMOTE_IP;
		return rbac_cidr(x, in->direct_remote_ip, "direct_remote_ip", &n->cidr);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_REMOTE_IP:
		n->kind = PX_RBAC_REMOTE_IP;
		return rbac_cidr(x, in->remote_ip, "remote_ip", &n->cidr);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER:
		n->kind = PX_RBAC_HEADER;
		return rbac_header(x, in->header, &n->header);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_URL_PATH:
		n->kind = PX_RBAC_URL_PATH;
		return rbac_path(x, in->url_path, &n->str);
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA:
		return serr(x, "metadata is not supported");
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_FILTER_STATE:
		return serr(x, "filter_state is not supported");
	default:
		return serr(x, "a principal needs an identifier");
	}
	if (!rc)
		spop(x, mark);
	return rc;
}

static int rbac_policy_cmp(const void *a, const void *b)
{
	return strcmp(((const struct px_rbac_policy *)a)->name,
		      ((const struct px_rbac_policy *)b)->name);
}

static int rbac_rules(struct sctx *x, const RbacRules *in, const char *field,
		      struct px_rbac_rules **out)
{
	size_t mark = spush(x, "%s", field);
	struct px_rbac_rules *r = arena_new(x->a, struct px_rbac_rules, 1);

	if (!r)
		return snomem(x);
	switch (in->action) {
	case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW:
		r->action = PX_RBAC_ALLOW;
		break;
	case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY:
		r->action = PX_RBAC_DENY;
		break;
	case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG:
		r->action = PX_RBAC_LOG;
		break;
	default:
		return serr(x, "action: %d is not ALLOW, DENY or LOG", (int)in->action);
	}
	if (in->audit_logging_options)
		return serr(x, "audit_logging_options is not supported");
	if (in->n_policies) {
		r->policies = arena_new(x->a, struct px_rbac_policy, in->n_policies);
		if (!r->policies)
			return snomem(x);
	}
	*out = r; /* reachable from the snapshot while it is built: its regexes get freed */
	for (size_t i = 0; i < in->n_policies; i++) {
		const Envoy__Config__Rbac__V3__Policy *p = in->policies[i]->value;
		struct px_rbac_policy *o = &r->policies[i];
		size_t pm = spush(x, "policies[\"%s\"]", in->policies[i]->key);
		int rc;

		r->npolicies = (uint32_t)i + 1;
		o->name = arena_strdup(x->a, in->policies[i]->key ? in->policies[i]->key : "");
		if (!o->name)
			return snomem(x);
		if (!p || !p->n_permissions || !p->n_principals)
			return serr(x, "a policy needs permissions and principals");
		if (p->condition)
			return serr(x, "condition is not supported");
		if (p->checked_condition)
			return serr(x, "checked_condition is not supported");
		o->permissions = arena_new(x->a, struct px_rbac_node, p->n_permissions);
		o->principals = arena_new(x->a, struct px_rbac_node, p->n_principals);
		if (!o->permissions || !o->principals)
			return snomem(x);
		o->npermissions = (uint32_t)p->n_permissions;
		o->nprincipals = (uint32_t)p->n_principals;
		for (size_t k = 0; k < p->n_permissions; k++) {
			size_t km = spush(x, "permissions[%zu]", k);

			rc = rbac_permission(x, p->permissions[k], &o->permissions[k], 0);
			if (rc)
				return rc;
			spop(x, km);
		}
		for (size_t k = 0; k < p->n_principals; k++) {
			size_t km = spush(x, "principals[%zu]", k);

			rc = rbac_principal(x, p->principals[k], &o->principals[k], 0);
			if (rc)
				return rc;
			spop(x, km);
		}
		spop(x, pm);
	}
	/* Envoy evaluates policies in name order and reports the first that matched. */
	if (r->npolicies > 1)
		qsort(r->policies, r->npolicies, sizeof(*r->policies), rbac_policy_cmp);
	spop(x, mark);
	return 0;
}

/* An RBAC filter config from its rules and shadow rules, owned by the snapshot (on its list of
 * configs whose regexes it frees from the start, so that a failure half-way leaks nothing).
 * matcher, shadow_matcher: whether the filter set those (the xDS matcher API), refused. */
static int rbac_config(struct sctx *x, const RbacRules *rules, const RbacRules *shadow,
		       bool matcher, bool shadow_matcher, const struct px_rbac **out)
{
	struct px_rbac *f;
	int rc = 0;

	if (matcher)
		return serr(x, "matcher: not supported (use rules)");
	if (shadow_matcher)
		return serr(x, "shadow_matcher: not supported (use shadow_rules)");
	f = arena_new(x->a, struct px_rbac, 1);
	if (!f)
		return snomem(x);
	f->next = x->s->rbacs;
	x->s->rbacs = f;
	if (rules)
		rc = rbac_rules(x, rules, "rules", &f->rules);
	if (!rc && shadow)
		rc = rbac_rules(x, shadow, "shadow_rules", &f->shadow);
	if (!rc)
		*out = f;
	return rc;
}

/* envoy.filters.http.rbac's RBAC message (the filter's or a route's override). */
static int http_rbac(struct sctx *x, const HttpRbac *in, const struct px_rbac **out)
{
	if (in->track_per_rule_stats && !in->matcher && !in->shadow_matcher)
		return serr(x, "track_per_rule_stats: not supported");
	return rbac_config(x, in->rules, in->shadow_rules, in->matcher, in->shadow_matcher, out);
}

static int http_rbac_filter(struct sctx *x, const Any *typed, const struct px_rbac **out)
{
	ProtobufCMessage *msg;
	size_t mark = spush(x, "typed_config");
	int rc = unpack(x, typed, HTTP_RBAC_TYPE, &msg);

	if (rc)
		return rc;
	rc = http_rbac(x, (const HttpRbac *)msg, out);
	protobuf_c_message_free_unpacked(msg, NULL);
	if (!rc)
		spop(x, mark);
	return rc;
}

static int net_rbac_filter(struct sctx *x, const Any *typed, const struct px_rbac **out)
{
	ProtobufCMessage *msg;
	const NetRbac *in;
	size_t mark = spush(x, "typed_config");
	int rc = unpack(x, typed, NET_RBAC_TYPE, &msg);

	if (rc)
		return rc;
	in = (const NetRbac *)msg;
	/* CONTINUOUS re-decides on every read in Envoy; with no dynamic inputs (metadata and
	 * filter_state are refused) every decision equals the first, so both types are one. */
	rc = rbac_config(x, in->rules, in->shadow_rules, in->matcher, in->shadow_matcher, out);
	protobuf_c_message_free_unpacked(msg, NULL);
	if (!rc)
		spop(x, mark);
	return rc;
}

/* Appends the RBAC filter name, translated by xlate from its typed_config, to a chain's or an
 * HCM's list of them (room for cap, made on first use). */
static int rbac_filter_add(struct sctx *x, struct px_rbac_filter **v, uint32_t *n, size_t cap,
			   const char *name, const Any *typed,
			   int (*xlate)(struct sctx *x, const Any *typed,
					const struct px_rbac **out))
{
	struct px_rbac_filter *rf;
	int rc;

	if (!*v) {
		*v = arena_new(x->a, struct px_rbac_filter, cap);
		if (!*v)
			return snomem(x);
	}
	rf = &(*v)[*n];
	rf->name = arena_strdup(x->a, name ? name : "");
	if (!rf->name)
		return snomem(x);
	rc = xlate(x, typed, &rf->rbac);
	if (!rc)
		(*n)++;
	return rc;
}

/* One typed_per_filter_config entry of a route or virtual host: an RBACPerRoute (for the RBAC
 * filter of that name) goes into o[*k]; the other filters' configs are refused where they would
 * be dropped. */
static int per_filter_config(struct sctx *x, const char *key, const Any *v, size_t n,
			     struct px_rbac_override **o, uint32_t *k)
{
	ProtobufCMessage *msg;
	const HttpRbac *rb;
	size_t mark;
	int rc;

	key = key ? key : "";
	if (!v || strcmp(type_name_of(v->type_url), HTTP_RBAC_PER_ROUTE_TYPE))
		return per_filter_config_ok(x, key);
	if (!*o) {
		*o = arena_new(x->a, struct px_rbac_override, n);
		if (!*o)
			return snomem(x);
	}
	mark = spush(x, "typed_per_filter_config[\"%s\"]", key);
	rc = unpack(x, v, HTTP_RBAC_PER_ROUTE_TYPE, &msg);
	if (rc)
		return rc;
	rb = ((const Envoy__Extensions__Filters__Http__Rbac__V3__RBACPerRoute *)msg)->rbac;
	(*o)[*k].filter = arena_strdup(x->a, key);
	(*o)[*k].rbac = NULL; /* no rbac: the filter is disabled here */
	if (rb) {
		spush(x, "rbac");
		rc = http_rbac(x, rb, &(*o)[*k].rbac);
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	if (rc)
		return rc;
	if (!(*o)[*k].filter)
		return snomem(x);
	(*k)++;
	spop(x, mark);
	return 0;
}

static int route_match(struct sctx *x, const RouteMatch *rm, struct px_route_match *m)
{
	size_t mark = spush(x, "match");
	int rc = 0;

	if (!rm)
		return serr(x, "is required");
	switch (rm->path_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
		m->kind = PX_PATH_PREFIX;
		m->path = arena_strdup(x->a, rm->prefix ? rm->prefix : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH:
		m->kind = PX_PATH_EXACT;
		m->path = arena_strdup(x->a, rm->path ? rm->path : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX:
		m->kind = PX_PATH_REGEX;
		m->path = arena_strdup(
			x->a, rm->safe_regex && rm->safe_regex->regex ? rm->safe_regex->regex : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
		m->kind = PX_PATH_SEPARATED_PREFIX;
		m->path = arena_strdup(x->a, rm->path_separated_prefix);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_CONNECT_MATCHER:
		m->kind = PX_PATH_CONNECT;
		m->path = arena_strdup(x->a, "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_MATCH_POLICY:
		return serr(x, "path_match_policy is not supported");
	default:
		return serr(x, "needs prefix, path, safe_regex or path_separated_prefix");
	}
	if (!m->path)
		return snomem(x);
	m->case_insensitive = rm->case_sensitive && !rm->case_sensitive->value;
	if (rm->runtime_fraction)
		return serr(x, "runtime_fraction is not supported");
	if (rm->n_dynamic_metadata)
		return serr(x, "dynamic_metadata is not supported");
	if (rm->n_headers) {
		m->headers = arena_new(x->a, struct px_header_matcher, rm->n_headers);
		if (!m->headers)
			return snomem(x);
	}
	for (size_t i = 0; i < rm->n_headers && !rc; i++) {
		size_t m2 = spush(x, "headers[%zu]", i);

		rc = header_matcher(x, rm->headers[i], &m->headers[i]);
		if (!rc)
			spop(x, m2);
	}
	m->nheaders = (uint32_t)rm->n_headers;
	if (!rc && rm->n_query_parameters) {
		m->query = arena_new(x->a, struct px_query_matcher, rm->n_query_parameters);
		if (!m->query)
			return snomem(x);
	}
	for (size_t i = 0; i < rm->n_query_parameters && !rc; i++) {
		const Envoy__Config__Route__V3__QueryParameterMatcher *q = rm->query_parameters[i];
		struct px_query_matcher *pq = &m->query[i];
		size_t m2 = spush(x, "query_parameters[%zu]", i);

		pq->name = arena_strdup(x->a, q->name ? q->name : "");
		if (!pq->name)
			return snomem(x);
		if (q->query_parameter_match_specifier_case ==
		    ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH) {
			spush(x, "string_match");
			rc = string_matcher(x, q->string_match, &pq->str);
		} else {
			pq->present_only = true;
		}
		if (!rc)
			spop(x, m2);
	}
	m->nquery = (uint32_t)rm->n_query_parameters;
	if (!rc)
		spop(x, mark);
	return rc;
}

static int retry_policy(struct sctx *x, const RetryPolicy *rp, struct px_retry_policy **out)
{
	struct px_retry_policy *p = arena_new(x->a, struct px_retry_policy, 1);
	size_t mark = spush(x, "retry_policy");
	const char *bad = NULL;

	if (!p)
		return snomem(x);
	if (rp->retry_on && *rp->retry_on && px_retry_on_parse(rp->retry_on, &p->retry_on, &bad))
		return serr(x, "retry_on: \"%s\" is not a retry condition", bad ? bad : "");
	/* Conditions that would retry in Envoy but never do here: said once per translation. */
	if (rp->retry_on && (strstr(rp->retry_on, "reset-before-request") ||
			     strstr(rp->retry_on, "retriable-headers")))
		pr_warn("%s \"%s\": %s.retry_on: reset-before-request and retriable-headers are "
			"not acted on (no retry for them)",
			x->who_noun, x->who_name, x->path);
	p->num_retries = rp->num_retries ? rp->num_retries->value : 1;
	p->per_try_timeout_ms = ms_of(rp->per_try_timeout);
	p->base_interval_ms = 25;
	if (rp->retry_back_off) {
		if (rp->retry_back_off->base_interval)
			p->base_interval_ms = ms_of(rp->retry_back_off->base_interval);
		if (!p->base_interval_ms)
			return serr(x, "retry_back_off.base_interval must be at least 1ms");
		p->max_interval_ms = ms_of(rp->retry_back_off->max_interval);
		if (p->max_interval_ms && p->max_interval_ms < p->base_interval_ms)
			return serr(x, "retry_back_off.max_interval is below base_interval");
	}
	if (!p->max_interval_ms)
		p->max_interval_ms = p->base_interval_ms * 10;
	if (rp->n_retriable_status_codes) {
		p->retriable_status_codes = arena_new(x->a, uint16_t, rp->n_retriable_status_codes);
		if (!p->retriable_status_codes)
			return snomem(x);
		for (size_t i = 0; i < rp->n_retriable_status_codes; i++) {
			if (rp->retriable_status_codes[i] < 100 ||
			    rp->retriable_status_codes[i] > 599)
				return serr(x,
					    "retriable_status_codes[%zu]: %u is not an HTTP status",
					    i, rp->retriable_status_codes[i]);
			p->retriable_status_codes[i] = (uint16_t)rp->retriable_status_codes[i];
		}
		p->nretriable_status_codes = (uint32_t)rp->n_retriable_status_codes;
	}
	for (size_t i = 0; i < rp->n_retry_host_predicate; i++) {
		const char *name = rp->retry_host_predicate[i]->name;
		const Any *t = rp->retry_host_predicate[i]->typed_config;

		if ((name && !strcmp(name, "envoy.retry_host_predicates.previous_hosts")) ||
		    (t && strstr(type_name_of(t->type_url), "PreviousHostsPredicate")))
			p->previous_hosts = true;
		else
			return serr(x, "retry_host_predicate[%zu]: \"%s\" is not supported", i,
				    name ? name : "");
	}
	if (rp->host_selection_retry_max_attempts < 0 ||
	    rp->host_selection_retry_max_attempts > UINT32_MAX)
		return serr(x, "host_selection_retry_max_attempts is out of range");
	p->host_selection_retry_max_attempts = (uint32_t)rp->host_selection_retry_max_attempts;
	spop(x, mark);
	*out = p;
	return 0;
}

/* upgrade_configs of a route: the type is required, enabled defaults to true; connect_config
 * only makes sense for CONNECT. Its proxy_protocol_config and allow_post are not carried. */
static int route_upgrades(struct sctx *x, const RouteAction *ra, struct px_route_action *a)
{
	if (!ra->n_upgrade_configs)
		return 0;
	a->upgrades = arena_new(x->a, struct px_upgrade, ra->n_upgrade_configs);
	if (!a->upgrades)
		return snomem(x);
	for (size_t i = 0; i < ra->n_upgrade_configs; i++) {
		const Envoy__Config__Route__V3__RouteAction__UpgradeConfig *u =
			ra->upgrade_configs[i];
		struct px_upgrade *o = &a->upgrades[i];

		if (!u->upgrade_type || !*u->upgrade_type)
			return serr(x, "upgrade_configs[%zu].upgrade_type is required", i);
		o->type = arena_strdup(x->a, u->upgrade_type);
		if (!o->type)
			return snomem(x);
		o->enabled = !u->enabled || u->enabled->value;
		if (u->connect_config) {
			if (strcasecmp(u->upgrade_type, "CONNECT"))
				return serr(x, "upgrade_configs[%zu].connect_config needs CONNECT",
					    i);
			if (u->connect_config->proxy_protocol_config)
				return serr(
					x, "connect_config.proxy_protocol_config is not supported");
			o->connect_terminate = true;
		}
	}
	a->nupgrades = (uint32_t)ra->n_upgrade_configs;
	return 0;
}

static int route_action(struct sctx *x, const RouteAction *ra, struct px_route_action *a)
{
	size_t mark = spush(x, "route");
	int rc;

	switch (ra->cluster_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER:
		a->cluster = arena_strdup(x->a, ra->cluster);
		if (!a->cluster)
			return snomem(x);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER:
		a->cluster_header = sdup_lower(x, ra->cluster_header);
		if (!a->cluster_header)
			return snomem(x);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS: {
		const Envoy__Config__Route__V3__WeightedCluster *wc = ra->weighted_clusters;

		if (!wc->n_clusters)
			return serr(x, "weighted_clusters.clusters must not be empty");
		a->weighted = arena_new(x->a, struct px_weighted_route_cluster, wc->n_clusters);
		if (!a->weighted)
			return snomem(x);
		for (size_t i = 0; i < wc->n_clusters; i++) {
			const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
				wc->clusters[i];
			struct px_weighted_route_cluster *w = &a->weighted[i];
			size_t m2 = spush(x, "weighted_clusters.clusters[%zu]", i);

			if (!cw->name || !*cw->name)
				return serr(x,
					    "name: a cluster name is required (cluster_header is "
					    "not supported here)");
			w->cluster = arena_strdup(x->a, cw->name);
			w->weight = cw->weight ? cw->weight->value : 0;
			if (!w->cluster)
				return snomem(x);
			rc = header_mutation(x, cw->request_headers_to_add,
					     cw->n_request_headers_to_add,
					     cw->request_headers_to_remove,
					     cw->n_request_headers_to_remove, &w->request);
			if (!rc)
				rc = header_mutation(x, cw->response_headers_to_add,
						     cw->n_response_headers_to_add,
						     cw->response_headers_to_remove,
						     cw->n_response_headers_to_remove,
						     &w->response);
			if (rc)
				return rc;
			a->total_weight += w->weight;
			spop(x, m2);
		}
		a->nweighted = (uint32_t)wc->n_clusters;
		if (!a->total_weight)
			return serr(x, "weighted_clusters: the weights add up to 0");
		break;
	}
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_SPECIFIER_PLUGIN:
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_INLINE_CLUSTER_SPECIFIER_PLUGIN:
		return serr(x, "cluster_specifier_plugin is not supported");
	default:
		return serr(x, "needs cluster, cluster_header or weighted_clusters");
	}
	if (is_zero_duration(ra->timeout))
		a->no_timeout = true;
	else
		a->timeout_ms = ra->timeout ? ms_of(ra->timeout) : PX_ROUTE_TIMEOUT_MS_DEF;
	a->idle_timeout_ms = ms_of(ra->idle_timeout);
	if (ra->max_stream_duration && ra->max_stream_duration->grpc_timeout_header_max) {
		a->grpc_timeout = true;
		a->grpc_timeout_max_ms = ms_of(ra->max_stream_duration->grpc_timeout_header_max);
		a->grpc_timeout_offset_ms =
			ms_of(ra->max_stream_duration->grpc_timeout_header_offset);
	} else if (ra->max_grpc_timeout) {
		a->grpc_timeout = true;
		a->grpc_timeout_max_ms = ms_of(ra->max_grpc_timeout);
		a->grpc_timeout_offset_ms = ms_of(ra->grpc_timeout_offset);
		a->grpc_timeout_rewrite = true;
	}
	rc = route_upgrades(x, ra, a);
	if (rc)
		return rc;
	a->prefix_rewrite = sdup(x, ra->prefix_rewrite);
	if (ra->regex_rewrite) {
		if (!ra->regex_rewrite->pattern || !ra->regex_rewrite->pattern->regex)
			return serr(x, "regex_rewrite.pattern.regex is required");
		a->regex_rewrite_pattern = arena_strdup(x->a, ra->regex_rewrite->pattern->regex);
		a->regex_rewrite_substitution = arena_strdup(
			x->a,
			ra->regex_rewrite->substitution ? ra->regex_rewrite->substitution : "");
		if (!a->regex_rewrite_pattern || !a->regex_rewrite_substitution)
			return snomem(x);
	}
	switch (ra->host_rewrite_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL:
		a->host_rewrite_literal = sdup(x, ra->host_rewrite_literal);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE:
		if (ra->auto_host_rewrite && ra->auto_host_rewrite->value)
			return serr(x, "auto_host_rewrite is not supported");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_HEADER:
		return serr(x, "host_rewrite_header is not supported");
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_PATH_REGEX:
		return serr(x, "host_rewrite_path_regex is not supported");
	default:
		break;
	}
	if (ra->retry_policy) {
		rc = retry_policy(x, ra->retry_policy, &a->retry);
		if (rc)
			return rc;
	}
	if (ra->n_hash_policy) {
		a->hash = arena_new(x->a, struct px_hash_policy, ra->n_hash_policy);
		if (!a->hash)
			return snomem(x);
	}
	for (size_t i = 0; i < ra->n_hash_policy; i++) {
		const Envoy__Config__Route__V3__RouteAction__HashPolicy *hp = ra->hash_policy[i];
		struct px_hash_policy *h = &a->hash[i];
		size_t m2 = spush(x, "hash_policy[%zu]", i);

		h->terminal = hp->terminal;
		switch (hp->policy_specifier_case) {
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER:
			h->kind = PX_HASH_HEADER;
			h->name = sdup_lower(x, hp->header->header_name);
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE:
			if (hp->cookie->ttl)
				return serr(x, "cookie.ttl (generated cookies) is not supported");
			h->kind = PX_HASH_COOKIE;
			h->name = arena_strdup(x->a, hp->cookie->name ? hp->cookie->name : "");
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES:
			if (!hp->connection_properties->source_ip)
				return serr(x, "connection_properties.source_ip must be true");
			h->kind = PX_HASH_SOURCE_IP;
			h->name = "";
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER:
			return serr(x, "query_parameter is not supported");
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_FILTER_STATE:
			return serr(x, "filter_state is not supported");
		default:
			return serr(x, "needs header, cookie or connection_properties");
		}
		if (!h->name)
			return snomem(x);
		spop(x, m2);
	}
	a->nhash = (uint32_t)ra->n_hash_policy;
	spop(x, mark);
	return 0;
}

static int redirect(struct sctx *x, const Envoy__Config__Route__V3__RedirectAction *ra,
		    struct px_redirect *r)
{
	size_t mark = spush(x, "redirect");

	r->host = sdup(x, ra->host_redirect);
	r->port = ra->port_redirect;
	r->strip_query = ra->strip_query;
	if (ra->scheme_rewrite_specifier_case ==
	    ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_HTTPS_REDIRECT) {
		if (ra->https_redirect)
			r->scheme = "https";
	} else if (
		ra->scheme_rewrite_specifier_case ==
		ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT) {
		r->scheme = sdup(x, ra->scheme_redirect);
	}
	switch (ra->path_rewrite_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT:
		r->path = sdup(x, ra->path_redirect);
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PREFIX_REWRITE:
		r->prefix_rewrite =
			arena_strdup(x->a, ra->prefix_rewrite ? ra->prefix_rewrite : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_REGEX_REWRITE:
		return serr(x, "regex_rewrite is not supported");
	default:
		break;
	}
	switch (ra->response_code) {
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__FOUND:
		r->response_code = 302;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__SEE_OTHER:
		r->response_code = 303;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__TEMPORARY_REDIRECT:
		r->response_code = 307;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__PERMANENT_REDIRECT:
		r->response_code = 308;
		break;
	default:
		r->response_code = 301;
		break;
	}
	spop(x, mark);
	return 0;
}

static int direct_response(struct sctx *x, const Envoy__Config__Route__V3__DirectResponseAction *d,
			   struct px_direct_response *r)
{
	size_t mark = spush(x, "direct_response");

	if (d->status < 200 || d->status > 599)
		return serr(x, "status: %u is out of range 200..599", d->status);
	r->status = d->status;
	if (d->body) {
		const Envoy__Config__Core__V3__DataSource *b = d->body;

		if (b->specifier_case ==
		    ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING)
			r->body = arena_strdup(x->a, b->inline_string ? b->inline_string : "");
		else if (b->specifier_case ==
			 ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES)
			r->body = arena_strndup(x->a, (const char *)b->inline_bytes.data,
						b->inline_bytes.len);
		else
			return serr(x, "body: only inline_string and inline_bytes are supported");
		if (!r->body)
			return snomem(x);
	}
	spop(x, mark);
	return 0;
}

static int route(struct sctx *x, const Route *rt, struct px_route *r)
{
	int rc;

	r->name = sdup(x, rt->name);
	for (size_t i = 0; i < rt->n_typed_per_filter_config; i++)
		if (per_filter_config(x, rt->typed_per_filter_config[i]->key,
				      rt->typed_per_filter_config[i]->value,
				      rt->n_typed_per_filter_config, &r->rbac, &r->nrbac))
			return -EINVAL;
	if (rt->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE && rt->route->cors)
		return serr(x, "route.cors is not supported");
	rc = route_match(x, rt->match, &r->match);
	if (rc)
		return rc;
	switch (rt->action_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE:
		r->kind = PX_ROUTE_FORWARD;
		rc = route_action(x, rt->route, &r->action);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT:
		r->kind = PX_ROUTE_REDIRECT;
		rc = redirect(x, rt->redirect, &r->redirect);
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE:
		r->kind = PX_ROUTE_DIRECT;
		rc = direct_response(x, rt->direct_response, &r->direct);
		break;
	default:
		rc = serr(x, "needs route, redirect or direct_response");
		break;
	}
	if (!rc)
		rc = header_mutation(x, rt->request_headers_to_add, rt->n_request_headers_to_add,
				     rt->request_headers_to_remove, rt->n_request_headers_to_remove,
				     &r->request);
	if (!rc)
		rc = header_mutation(x, rt->response_headers_to_add, rt->n_response_headers_to_add,
				     rt->response_headers_to_remove,
				     rt->n_response_headers_to_remove, &r->response);
	return rc;
}

static int vhost(struct sctx *x, const VirtualHost *vh, struct px_vhost *v)
{
	int rc = 0;

	v->name = sdup(x, vh->name);
	if (vh->cors)
		return serr(x, "cors is not supported");
	for (size_t i = 0; i < vh->n_typed_per_filter_config; i++)
		if (per_filter_config(x, vh->typed_per_filter_config[i]->key,
				      vh->typed_per_filter_config[i]->value,
				      vh->n_typed_per_filter_config, &v->rbac, &v->nrbac))
			return -EINVAL;
	if (vh->require_tls)
		return serr(x, "require_tls is not supported");
	if (!vh->n_domains)
		return serr(x, "domains must not be empty");
	v->domains = strv(x, vh->domains, vh->n_domains, &v->ndomains, 1);
	if (!v->domains)
		return snomem(x);
	if (vh->n_routes) {
		v->routes = arena_new(x->a, struct px_route, vh->n_routes);
		if (!v->routes)
			return snomem(x);
	}
	for (size_t i = 0; i < vh->n_routes && !rc; i++) {
		size_t mark = spush(x, "routes[%zu]", i);

		rc = route(x, vh->routes[i], &v->routes[i]);
		if (!rc)
			spop(x, mark);
	}
	v->nroutes = (uint32_t)vh->n_routes;
	if (!rc && vh->retry_policy)
		rc = retry_policy(x, vh->retry_policy, &v->retry);
	v->include_attempt_count = vh->include_request_attempt_count;
	if (!rc)
		rc = header_mutation(x, vh->request_headers_to_add, vh->n_request_headers_to_add,
				     vh->request_headers_to_remove, vh->n_request_headers_to_remove,
				     &v->request);
	if (!rc)
		rc = header_mutation(x, vh->response_headers_to_add, vh->n_response_headers_to_add,
				     vh->response_headers_to_remove,
				     vh->n_response_headers_to_remove, &v->response);
	return rc;
}

static int route_config(struct sctx *x, const RouteConfiguration *in, struct px_route_config *rc)
{
	int r = 0;

	rc->name = arena_strdup(x->a, in->name ? in->name : "");
	if (!rc->name)
		return snomem(x);
	if (in->vhds)
		return serr(x, "vhds is not supported");
	if (in->n_virtual_hosts) {
		rc->vhosts = arena_new(x->a, struct px_vhost, in->n_virtual_hosts);
		if (!rc->vhosts)
			return snomem(x);
	}
	for (size_t i = 0; i < in->n_virtual_hosts && !r; i++) {
		size_t mark = spush(x, "virtual_hosts[%zu]", i);

		r = vhost(x, in->virtual_hosts[i], &rc->vhosts[i]);
		if (!r)
			spop(x, mark);
	}
	rc->nvhosts = (uint32_t)in->n_virtual_hosts;
	if (!r)
		r = header_mutation(x, in->request_headers_to_add, in->n_request_headers_to_add,
				    in->request_headers_to_remove, in->n_request_headers_to_remove,
				    &rc->request);
	if (!r)
		r = header_mutation(x, in->response_headers_to_add, in->n_response_headers_to_add,
				    in->response_headers_to_remove,
				    in->n_response_headers_to_remove, &rc->response);
	return r;
}

/* ---- listeners ------------------------------------------------------------------------------ */

/* Envoy's ListenerFilterChainMatchPredicate, the part Istio writes: port ranges, or_match of
 * them, any_match. and_match and not_match are refused rather than ignored. */
static int filter_disabled(struct sctx *x,
			   const Envoy__Config__Listener__V3__ListenerFilterChainMatchPredicate *p,
			   struct px_filter_disabled *d)
{
	switch (p->rule_case) {
	case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_ANY_MATCH:
		d->all = d->all || p->any_match;
		return 0;
	case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_DESTINATION_PORT_RANGE: {
		const Envoy__Type__V3__Int32Range *r = p->destination_port_range;
		struct px_port_range *n;

		if (r->start < 0 || r->end > 65536 || r->start >= r->end)
			return serr(x, "destination_port_range [%d, %d) is not a port range",
				    r->start, r->end);
		n = arena_new(x->a, struct px_port_range, d->nranges + 1);
		if (!n)
			return snomem(x);
		if (d->nranges)
			memcpy(n, d->ranges, d->nranges * sizeof(*n));
		n[d->nranges].start = (__u16)r->start;
		n[d->nranges].end = r->end == 65536 ? 65535 : (__u16)r->end;
		d->ranges = n;
		d->nranges++;
		return 0;
	}
	case ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER_CHAIN_MATCH_PREDICATE__RULE_OR_MATCH:
		for (size_t i = 0; i < p->or_match->n_rules; i++) {
			int rc = filter_disabled(x, p->or_match->rules[i], d);

			if (rc)
				return rc;
		}
		return 0;
	default:
		return serr(x, "only destination_port_range, or_match and any_match are supported");
	}
}

/* ---- transport sockets ---------------------------------------------------------------------- */

#define TLS_DOWN_TYPE "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define TLS_UP_TYPE   "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define RAW_TYPE      "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
#define TSM_METADATA  "envoy.transport_socket_match"

/* What one TLS context is built from while its resource is read. */
struct tls_build {
	struct px_tls_cfg cfg;
	struct px_san_match sans[XDS_TLS_MAX_SANS];
	const char *alpn[XDS_TLS_MAX_ALPN];
	const char *missing; /* an SDS secret that has not arrived */
	bool have_cert, have_validation;
	/* Where the certificate and the trusted CA came from, relative to the CommonTlsContext,
	 * for errors found when the context is built. */
	char cert_path[128], ca_path[160];
};

/* The error path so far, relative to the CommonTlsContext being read. */
static void tls_rel_path(const struct sctx *x, char *out, size_t len, const char *def)
{
	const char *rel = strstr(x->path, "common_tls_context.");

	snprintf(out, len, "%s", rel ? rel + strlen("common_tls_context.") : def);
}

/* A DataSource's bytes; a file is read now, on the agent's thread, never by a worker. */
static int data_source(struct sctx *x, const DataSource *d, struct px_tls_pem *out)
{
	struct stat st;
	char *buf;
	FILE *f;
	size_t n;

	switch (d ? d->specifier_case : ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER__NOT_SET) {
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
		out->data = d->inline_string;
		out->len = strlen(d->inline_string);
		return 0;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
		out->data = (const char *)d->inline_bytes.data;
		out->len = d->inline_bytes.len;
		return 0;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
		break;
	default:
		return serr(x, "needs filename, inline_string or inline_bytes");
	}
	/* Istio names the same few files from every cluster: read each once per snapshot. */
	for (uint32_t i = 0; i < x->nfiles; i++) {
		if (!strcmp(x->files[i].name, d->filename)) {
			*out = x->files[i].pem;
			return 0;
		}
	}
	f = fopen(d->filename, "re");
	if (!f)
		return serr(x, "filename: cannot read \"%s\": %s", d->filename, strerror(errno));
	if (fstat(fileno(f), &st) || st.st_size > XDS_TLS_FILE_MAX) {
		fclose(f);
		return serr(x, "filename: \"%s\" is larger than %d bytes", d->filename,
			    XDS_TLS_FILE_MAX);
	}
	buf = arena_alloc(x->a, (size_t)st.st_size + 1);
	n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (!buf)
		return snomem(x);
	out->data = buf;
	out->len = n;
	if (x->nfiles < XDS_TLS_FILE_CACHE) {
		x->files[x->nfiles].name = arena_strdup(x->a, d->filename);
		x->files[x->nfiles].pem = *out;
		x->nfiles += x->files[x->nfiles].name != NULL;
	}
	return 0;
}

static int tls_certificate(struct sctx *x, const TlsCertificate *c, struct tls_build *b)
{
	size_t mark;
	int rc;

	if (c->pkcs12 || c->private_key_provider)
		return serr(x, "pkcs12 and private_key_provider are not supported");
	tls_rel_path(x, b->cert_path, sizeof(b->cert_path), "tls_certificates[0]");
	mark = spush(x, "certificate_chain");
	rc = data_source(x, c->certificate_chain, &b->cfg.cert_chain);
	if (rc)
		return rc;
	spop(x, mark);
	spush(x, "private_key");
	rc = data_source(x, c->private_key, &b->cfg.private_key);
	if (rc)
		return rc;
	spop(x, mark);
	b->have_cert = true;
	return 0;
}

static int san_add(struct sctx *x, struct tls_build *b, enum px_san_type type,
		   const StringMatcher *m)
{
	struct px_san_match *s;

	if (b->cfg.nsans == XDS_TLS_MAX_SANS)
		return serr(x, "more than %d subject alt name matchers", XDS_TLS_MAX_SANS);
	if (!m)
		return serr(x, "needs a matcher");
	if (m->ignore_case)
		return serr(x, "ignore_case is not supported");
	s = &b->sans[b->cfg.nsans];
	s->type = type;
	switch (m->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
		s->kind = PX_SAN_EXACT;
		s->value = m->exact;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
		s->kind = PX_SAN_PREFIX;
		s->value = m->prefix;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
		s->kind = PX_SAN_SUFFIX;
		s->value = m->suffix;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
		s->kind = PX_SAN_CONTAINS;
		s->value = m->contains;
		break;
	default:
		return serr(x, "only exact, prefix, suffix and contains are supported");
	}
	b->cfg.nsans++;
	return 0;
}

static int validation_context(struct sctx *x, const ValidationContext *v, struct tls_build *b)
{
	static const enum px_san_type any_type[] = {PX_SAN_DNS, PX_SAN_URI, PX_SAN_EMAIL,
						    PX_SAN_IP};
	size_t mark;
	int rc;

	if (v->n_verify_certificate_spki || v->n_verify_certificate_hash || v->crl ||
	    v->custom_validator_config || v->allow_expired_certificate ||
	    v->trust_chain_verification || v->ca_certificate_provider_instance ||
	    v->system_root_certs)
		return serr(x, "only trusted_ca, match_typed_subject_alt_names and "
			       "match_subject_alt_names are supported");
	if (v->trusted_ca) {
		tls_rel_path(x, b->ca_path, sizeof(b->ca_path), "validation_context");
		mark = spush(x, "trusted_ca");
		rc = data_source(x, v->trusted_ca, &b->cfg.trusted_ca);
		if (rc)
			return rc;
		spop(x, mark);
	}
	for (size_t i = 0; i < v->n_match_typed_subject_alt_names; i++) {
		const SanMatcher *m = v->match_typed_subject_alt_names[i];
		enum px_san_type t;

		mark = spush(x, "match_typed_subject_alt_names[%zu]", i);
		switch (m->san_type) {
		case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS:
			t = PX_SAN_DNS;
			break;
		case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI:
			t = PX_SAN_URI;
			break;
		case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL:
			t = PX_SAN_EMAIL;
			break;
		case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS:
			t = PX_SAN_IP;
			break;
		default:
			return serr(x, "san_type: DNS, URI, EMAIL or IP_ADDRESS");
		}
		spush(x, "matcher");
		rc = san_add(x, b, t, m->matcher);
		if (rc)
			return rc;
		spop(x, mark);
	}
	/* The older form matches a name of any type. */
	for (size_t i = 0; i < v->n_match_subject_alt_names; i++) {
		mark = spush(x, "match_subject_alt_names[%zu]", i);
		for (size_t k = 0; k < sizeof(any_type) / sizeof(any_type[0]); k++) {
			rc = san_add(x, b, any_type[k], v->match_subject_alt_names[i]);
			if (rc)
				return rc;
		}
		spop(x, mark);
	}
	b->have_validation = true;
	return 0;
}

/* A secret by SDS name: NULL when it has not arrived (the context is then not ready), or when it
 * is not of the type wanted (an error). */
static const Secret *sds_secret(struct sctx *x, const SdsSecretConfig *sc,
				Envoy__Extensions__TransportSockets__Tls__V3__Secret__TypeCase want,
				struct tls_build *b, int *rc)
{
	const struct xds_resource *r =
		sc->name && *sc->name ? xds_config_find(x->cfg, XDS_SECRET, sc->name) : NULL;
	const Secret *s = r ? (const Secret *)r->msg : NULL;

	*rc = 0;
	if (!sc->name || !*sc->name) {
		*rc = serr(x, "name: an SDS secret needs a name");
		return NULL;
	}
	if (!s) {
		if (!sc->sds_config) { /* Envoy takes only a static secret then */
			*rc = serr(x, "name: no static secret \"%s\"", sc->name);
			return NULL;
		}
		if (!b->missing)
			b->missing = sc->name;
		return NULL;
	}
	if (s->type_case != want) {
		*rc = serr(
			x, "secret \"%s\" is not a %s", sc->name,
			want == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE
				? "tls_certificate"
				: "validation_context");
		return NULL;
	}
	return s;
}

static int sds_validation(struct sctx *x, const SdsSecretConfig *sc, struct tls_build *b)
{
	int rc;
	const Secret *s = sds_secret(
		x, sc,
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT, b,
		&rc);

	if (rc || !s)
		return rc;
	spush(x, "(secret \"%s\").validation_context", sc->name);
	return validation_context(x, s->validation_context, b);
}

static int tls_params(struct sctx *x, const TlsParams *p, struct tls_build *b)
{
	size_t len = 1;
	char *ciphers;

	b->cfg.min_version = px_tls_version((int)p->tls_minimum_protocol_version);
	b->cfg.max_version = px_tls_version((int)p->tls_maximum_protocol_version);
	if (b->cfg.min_version < 0 || b->cfg.max_version < 0)
		return serr(x, "tls_minimum_protocol_version / tls_maximum_protocol_version: "
			       "unknown version");
	if (!p->n_cipher_suites)
		return 0;
	for (size_t i = 0; i < p->n_cipher_suites; i++)
		len += strlen(p->cipher_suites[i]) + 1;
	ciphers = arena_alloc(x->a, len);
	if (!ciphers)
		return snomem(x);
	ciphers[0] = 0;
	for (size_t i = 0; i < p->n_cipher_suites; i++) {
		/* Envoy's "[A|B]" equal-preference groups have no OpenSSL spelling. */
		if (strchr(p->cipher_suites[i], '['))
			return serr(x,
				    "cipher_suites[%zu]: equal-preference groups are not "
				    "supported",
				    i);
		if (i)
			strcat(ciphers, ":");
		strcat(ciphers, p->cipher_suites[i]);
	}
	b->cfg.ciphers = ciphers;
	return 0;
}

static int common_tls(struct sctx *x, const CommonTlsContext *c, struct tls_build *b)
{
	size_t mark;
	int rc = 0;

	if (c->tls_params) {
		mark = spush(x, "tls_params");
		rc = tls_params(x, c->tls_params, b);
		if (rc)
			return rc;
		spop(x, mark);
	}
	if (c->n_tls_certificates + c->n_tls_certificate_sds_secret_configs > 1)
		return serr(x, "tls_certificates: one certificate per context is supported");
	if (c->tls_certificate_provider_instance || c->custom_handshaker || c->key_log)
		return serr(x, "tls_certificate_provider_instance, custom_handshaker and key_log "
			       "are not supported");
	if (c->n_tls_certificates) {
		mark = spush(x, "tls_certificates[0]");
		rc = tls_certificate(x, c->tls_certificates[0], b);
		if (rc)
			return rc;
		spop(x, mark);
	}
	if (c->n_tls_certificate_sds_secret_configs) {
		const SdsSecretConfig *sc = c->tls_certificate_sds_secret_configs[0];
		const Secret *s;

		mark = spush(x, "tls_certificate_sds_secret_configs[0]");
		s = sds_secret(
			x, sc,
			ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE,
			b, &rc);
		if (rc)
			return rc;
		if (s) {
			spush(x, "(secret \"%s\").tls_certificate", sc->name);
			rc = tls_certificate(x, s->tls_certificate, b);
			if (rc)
				return rc;
		}
		spop(x, mark);
	}
	mark = x->plen;
	switch (c->validation_context_type_case) {
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET:
		break;
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT:
		spush(x, "validation_context");
		rc = validation_context(x, c->validation_context, b);
		break;
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
		spush(x, "validation_context_sds_secret_config");
		rc = sds_validation(x, c->validation_context_sds_secret_config, b);
		break;
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT: {
		const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
			*cv = c->combined_validation_context;

		spush(x, "combined_validation_context");
		rc = 0;
		if (cv->default_validation_context) {
			size_t m2 = spush(x, "default_validation_context");

			rc = validation_context(x, cv->default_validation_context, b);
			if (!rc)
				spop(x, m2);
		}
		if (!rc && cv->validation_context_sds_secret_config) {
			spush(x, "validation_context_sds_secret_config");
			rc = sds_validation(x, cv->validation_context_sds_secret_config, b);
		} else if (!rc && (cv->validation_context_certificate_provider ||
				   cv->validation_context_certificate_provider_instance)) {
			rc = serr(x, "certificate providers are not supported");
		}
		break;
	}
	default:
		rc = serr(x, "validation_context_type: certificate providers are not supported");
	}
	if (rc)
		return rc;
	spop(x, mark);
	if (c->n_alpn_protocols > XDS_TLS_MAX_ALPN)
		return serr(x, "alpn_protocols: more than %d", XDS_TLS_MAX_ALPN);
	for (size_t i = 0; i < c->n_alpn_protocols; i++)
		b->alpn[b->cfg.nalpn++] = c->alpn_protocols[i];
	return 0;
}

static void digest_add(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint64_t len = n;

	EVP_DigestUpdate(md, &len, sizeof(len));
	if (n)
		EVP_DigestUpdate(md, p, n);
}

/* What makes two client contexts' SSL_CTX the same: all of the config but the SAN matchers. */
static int tls_cfg_digest(const struct px_tls_cfg *c, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int v[3] = {c->min_version, c->max_version, c->require_client_certificate};
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);

	if (ok) {
		digest_add(md, v, sizeof(v));
		digest_add(md, c->cert_chain.data, c->cert_chain.data ? c->cert_chain.len : 0);
		digest_add(md, c->private_key.data, c->private_key.data ? c->private_key.len : 0);
		digest_add(md, c->trusted_ca.data, c->trusted_ca.data ? c->trusted_ca.len : 0);
		digest_add(md, c->ciphers, c->ciphers ? strlen(c->ciphers) : 0);
		for (uint32_t i = 0; i < c->nalpn; i++)
			digest_add(md, c->alpn[i], strlen(c->alpn[i]));
		ok = EVP_DigestFinal_ex(md, out, NULL);
	}
	EVP_MD_CTX_free(md);
	return ok ? 0 : -ENOMEM;
}

/* Istio gives every outbound cluster the same certificate, CA and ALPN with its own SANs: one
 * SSL_CTX (about a millisecond and tens of KB to build) serves them all. */
static int tls_ctx_shared(struct sctx *x, struct tls_build *b, struct px_tls_ctx **out)
{
	unsigned char d[32];

	*out = NULL;
	if (b->cfg.server || (b->cfg.nsans && !b->cfg.trusted_ca.data) ||
	    tls_cfg_digest(&b->cfg, d))
		return 0;
	for (uint32_t i = 0; i < x->ntls_bases; i++) {
		if (memcmp(x->tls_bases[i].digest, d, sizeof(d)))
			continue;
		if (px_tls_ctx_share(x->tls_bases[i].base, b->sans, b->cfg.nsans, out))
			return snomem(x);
		return px_snapshot_own_tls(x->s, *out) ? snomem(x) : 0;
	}
	return 0;
}

static void tls_ctx_remember(struct sctx *x, struct tls_build *b, struct px_tls_ctx *t)
{
	if (b->cfg.server || x->ntls_bases == XDS_TLS_BASE_CACHE ||
	    tls_cfg_digest(&b->cfg, x->tls_bases[x->ntls_bases].digest))
		return;
	x->tls_bases[x->ntls_bases++].base = t;
}

/* px_tls_ctx_new names fields relative to the CommonTlsContext (certificate_chain, private_key,
 * validation_context.trusted_ca, ...): the path says where they came from. */
static int tls_ctx_build(struct sctx *x, struct tls_build *b, struct px_tls_ctx **out)
{
	char err[PX_TLS_ERR_MAX];
	int rc;

	b->cfg.sans = b->sans;
	b->cfg.alpn = b->alpn;
	rc = tls_ctx_shared(x, b, out);
	if (rc || *out)
		return rc;
	rc = px_tls_ctx_new(&b->cfg, out, err, sizeof(err));
	if (rc == -ENOMEM)
		return snomem(x);
	if (rc) {
		bool cert =
			!strncmp(err, "certificate_chain", 17) || !strncmp(err, "private_key", 11);
		bool ca = !strncmp(err, "validation_context.", 19) && b->ca_path[0];
		const char *sep = strstr(err, ": ");

		if (!sep)
			return serr(x, "%s", err);
		if (cert)
			spush(x, "%s.%.*s", b->cert_path, (int)(sep - err), err);
		else if (ca)
			spush(x, "%s.%.*s", b->ca_path, (int)(sep - err - 19), err + 19);
		else
			spush(x, "%.*s", (int)(sep - err), err);
		return serr(x, "%s", sep + 2);
	}
	rc = px_snapshot_own_tls(x->s, *out);
	if (rc)
		return snomem(x);
	tls_ctx_remember(x, b, *out);
	return 0;
}

/* A filter chain's (server) or a cluster's (client) transport_socket. */
static int transport_socket(struct sctx *x, const TransportSocket *ts, bool server,
			    struct px_transport *out)
{
	const char *type = ts->typed_config ? type_name_of(ts->typed_config->type_url) : NULL;
	const char *want = server ? TLS_DOWN_TYPE : TLS_UP_TYPE;
	const CommonTlsContext *ctc;
	ProtobufCMessage *msg = NULL;
	struct tls_build *b;
	size_t mark;
	int rc;

	if (type ? !strcmp(type, RAW_TYPE)
		 : (ts->name && !strcmp(ts->name, "envoy.transport_sockets.raw_buffer")))
		return 0;
	if (!type || strcmp(type, want))
		return serr(x,
			    "transport_socket \"%s\" is not supported (raw_buffer, or tls with %s "
			    "here)",
			    ts->name ? ts->name : "",
			    server ? "a DownstreamTlsContext" : "an UpstreamTlsContext");
	mark = spush(x, "typed_config");
	rc = unpack(x, ts->typed_config, want, &msg);
	if (rc)
		return rc;
	b = calloc(1, sizeof(*b));
	if (!b) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return snomem(x);
	}
	b->cfg.server = server;
	if (server) {
		const DownTlsContext *d = (const DownTlsContext *)msg;

		ctc = d->common_tls_context;
		b->cfg.require_client_certificate =
			d->require_client_certificate && d->require_client_certificate->value;
		if (d->require_sni && d->require_sni->value)
			rc = serr(x, "require_sni is not supported");
	} else {
		const UpTlsContext *u = (const UpTlsContext *)msg;

		ctc = u->common_tls_context;
		if (u->sni && *u->sni) {
			out->sni = arena_strdup(x->a, u->sni);
			if (!out->sni)
				rc = snomem(x);
		}
	}
	if (!rc && ctc) {
		size_t m2 = spush(x, "common_tls_context");

		rc = common_tls(x, ctc, b);
		if (!rc)
			spop(x, m2);
	}
	if (!rc && server && !b->have_cert && !b->missing)
		rc = serr(x, "common_tls_context.tls_certificates: a DownstreamTlsContext needs a "
			     "certificate");
	if (!rc && b->missing) {
		/* Envoy's "not ready": the chain or cluster exists but refuses its traffic. */
		out->missing_secret = arena_strdup(x->a, b->missing);
		pr_warn("%s \"%s\": %s: SDS secret \"%s\" has not arrived: %s until it does",
			x->who_noun, x->who_name, x->path, b->missing,
			server ? "the filter chain refuses connections"
			       : "connections to the cluster fail (UF)");
		if (!out->missing_secret)
			rc = snomem(x);
	} else if (!rc) {
		/* A connection offers its codec's protocol when the context names none. */
		b->cfg.alpn_by_codec = !server && !b->cfg.nalpn;
		/* Envoy offers h2 by ALPN to an HTTP/2 cluster whose context names no protocol. */
		if (!server && x->want_h2 && !b->cfg.nalpn)
			b->alpn[b->cfg.nalpn++] = "h2";
		/* and h2, http/1.1 to an auto_config one. */
		if (!server && x->want_auto && !b->cfg.nalpn) {
			b->alpn[b->cfg.nalpn++] = "h2";
			b->alpn[b->cfg.nalpn++] = "http/1.1";
		}
		spush(x, "common_tls_context");
		rc = tls_ctx_build(x, b, &out->tls);
	}
	free(b);
	protobuf_c_message_free_unpacked(msg, NULL);
	if (!rc)
		spop(x, mark);
	return rc;
}

/* Cluster.transport_socket_matches as Istio writes them: the first entry whose match (string
 * fields) all equal the endpoint's filter_metadata["envoy.transport_socket_match"] decides the
 * endpoint's transport; an endpoint no entry matches uses the cluster's transport_socket. */
struct tsm {
	const Google__Protobuf__Struct *match;
	struct px_transport transport;
};

static int socket_matches(struct sctx *x, const Cluster *in)
{
	x->ntsm = 0;
	if (!in->n_transport_socket_matches)
		return 0;
	x->tsm = arena_new(x->a, struct tsm, in->n_transport_socket_matches);
	if (!x->tsm)
		return snomem(x);
	for (size_t i = 0; i < in->n_transport_socket_matches; i++) {
		const Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *m =
			in->transport_socket_matches[i];
		size_t mark = spush(x, "transport_socket_matches[%zu]", i);
		int rc;

		for (size_t k = 0; m->match && k < m->match->n_fields; k++) {
			const Google__Protobuf__Value *v = m->match->fields[k]->value;

			if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
				return serr(x, "match.%s: only string values are supported",
					    m->match->fields[k]->key);
		}
		x->tsm[i].match = m->match;
		if (m->transport_socket) {
			spush(x, "transport_socket");
			rc = transport_socket(x, m->transport_socket, false, &x->tsm[i].transport);
			if (rc)
				return rc;
		}
		spop(x, mark);
		x->ntsm++;
	}
	return 0;
}

static const char *md_string(const Google__Protobuf__Struct *st, const char *key)
{
	for (size_t k = 0; st && k < st->n_fields; k++) {
		const Google__Protobuf__Value *v = st->fields[k]->value;

		if (!strcmp(st->fields[k]->key, key) && v &&
		    v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
			return v->string_value;
	}
	return NULL;
}

static const struct px_transport *endpoint_transport(const struct sctx *x,
						     const Envoy__Config__Core__V3__Metadata *md)
{
	const Google__Protobuf__Struct *labels = NULL;

	if (!x->ntsm)
		return NULL;
	for (size_t i = 0; md && i < md->n_filter_metadata; i++)
		if (!strcmp(md->filter_metadata[i]->key, TSM_METADATA))
			labels = md->filter_metadata[i]->value;
	for (uint32_t i = 0; i < x->ntsm; i++) {
		const Google__Protobuf__Struct *m = x->tsm[i].match;
		bool all = true;

		for (size_t k = 0; m && k < m->n_fields && all; k++) {
			const char *have = md_string(labels, m->fields[k]->key);

			all = have && !strcmp(have, m->fields[k]->value->string_value);
		}
		if (all)
			return &x->tsm[i].transport;
	}
	return NULL;
}

static int tcp_proxy(struct sctx *x, const Any *typed, struct px_tcp_proxy *t)
{
	ProtobufCMessage *msg;
	const TcpProxy *tp;
	int rc = unpack(x, typed, TCP_PROXY_TYPE, &msg);

	if (rc)
		return rc;
	tp = (const TcpProxy *)msg;
	t->stat_prefix = sdup(x, tp->stat_prefix);
	/* 0s disables it; the proxy has no "never", so the longest it can hold. */
	t->idle_timeout_ms =
		is_zero_duration(tp->idle_timeout) ? UINT32_MAX : ms_of(tp->idle_timeout);
	if (tp->cluster_specifier_case ==
	    ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
		t->cluster = arena_strdup(x->a, tp->cluster ? tp->cluster : "");
		if (!t->cluster)
			rc = snomem(x);
	} else if (tp->weighted_clusters && tp->weighted_clusters->n_clusters) {
		size_t n = tp->weighted_clusters->n_clusters;

		t->weighted = arena_new(x->a, struct px_weighted_cluster, n);
		for (size_t i = 0; t->weighted && i < n; i++) {
			t->weighted[i].cluster =
				arena_strdup(x->a, tp->weighted_clusters->clusters[i]->name);
			t->weighted[i].weight = tp->weighted_clusters->clusters[i]->weight;
			if (!t->weighted[i].cluster)
				t->weighted = NULL;
		}
		t->nweighted = (uint32_t)n;
		if (!t->weighted)
			rc = snomem(x);
	} else {
		rc = serr(x, "needs cluster or weighted_clusters");
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

/* The HTTP filters other than the router: xdsres.c has let through only the ones the proxy owns
 * or Istio's inert ones. RBAC filters are enforced (is_optional or not: the proxy knows them);
 * those that would change traffic and that the proxy does not run yet are refused here, unless
 * marked is_optional. */
static int http_filters(struct sctx *x, const Hcm *in, struct px_hcm *h)
{
	for (size_t i = 0; i + 1 < in->n_http_filters; i++) {
		const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter
			*f = in->http_filters[i];
		const char *type =
			f->config_type_case == ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG &&
					f->typed_config
				? type_name_of(f->typed_config->type_url)
				: "";
		size_t mark = spush(x, "typed_config.http_filters[%zu]", i);
		ProtobufCMessage *msg;
		int rc, active;

		if (!strcmp(type, HTTP_RBAC_TYPE)) {
			rc = rbac_filter_add(x, &h->rbac, &h->nrbac, in->n_http_filters, f->name,
					     f->typed_config, http_rbac_filter);
			if (rc)
				return rc;
			spop(x, mark);
			continue;
		}
		if (f->is_optional) {
			spop(x, mark);
			continue;
		}
		if (!strcmp(type, "envoy.extensions.filters.http.fault.v3.HTTPFault")) {
			rc = unpack(x, f->typed_config, type, &msg);
			if (rc)
				return rc;
			active = ((Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *)msg)
					 ->delay ||
				 ((Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *)msg)
					 ->abort;
			protobuf_c_message_free_unpacked(msg, NULL);
			if (active)
				return serr(x, "%s: fault injection (delay/abort) is not supported",
					    f->name ? f->name : "");
		}
		spop(x, mark);
	}
	return 0;
}

/* The router's own settings (the last filter; xdsres.c has checked it is the router). Of them,
 * suppress_envoy_headers changes what the proxy sends; a router without typed_config has none. */
static int router_filter(struct sctx *x, const Hcm *in, struct px_hcm *h)
{
	const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
		in->n_http_filters ? in->http_filters[in->n_http_filters - 1] : NULL;
	static const char type[] = "envoy.extensions.filters.http.router.v3.Router";
	ProtobufCMessage *msg;
	size_t mark;
	int rc;

	if (!f ||
	    f->config_type_case !=
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG ||
	    !f->typed_config || strcmp(type_name_of(f->typed_config->type_url), type))
		return 0;
	mark = spush(x, "typed_config.http_filters[%zu]", in->n_http_filters - 1);
	rc = unpack(x, f->typed_config, type, &msg);
	if (rc)
		return rc;
	h->suppress_envoy_headers = ((Envoy__Extensions__Filters__Http__Router__V3__Router *)msg)
					    ->suppress_envoy_headers;
	protobuf_c_message_free_unpacked(msg, NULL);
	spop(x, mark);
	return 0;
}

/* upgrade_configs of the HCM: the type is required, enabled defaults to true. Upgrade filter
 * chains (filters) are not supported: the HCM's own chain serves upgrades too. */
static int hcm_upgrades(struct sctx *x, const Hcm *in, struct px_hcm *h)
{
	if (!in->n_upgrade_configs)
		return 0;
	h->upgrades = arena_new(x->a, struct px_upgrade, in->n_upgrade_configs);
	if (!h->upgrades)
		return snomem(x);
	for (size_t i = 0; i < in->n_upgrade_configs; i++) {
		const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig
			*u = in->upgrade_configs[i];

		if (!u->upgrade_type || !*u->upgrade_type)
			return serr(x, "upgrade_configs[%zu].upgrade_type is required", i);
		if (u->n_filters)
			return serr(x, "upgrade_configs[%zu].filters is not supported", i);
		h->upgrades[i].type = arena_strdup(x->a, u->upgrade_type);
		if (!h->upgrades[i].type)
			return snomem(x);
		h->upgrades[i].enabled = !u->enabled || u->enabled->value;
	}
	h->nupgrades = (uint32_t)in->n_upgrade_configs;
	return 0;
}

static int hcm(struct sctx *x, const Any *typed, struct px_hcm *h)
{
	ProtobufCMessage *msg;
	const Hcm *in;
	int rc = unpack(x, typed, HCM_TYPE, &msg);

	if (rc)
		return rc;
	in = (const Hcm *)msg;
	h->stat_prefix = sdup(x, in->stat_prefix);
	rc = http_filters(x, in, h);
	if (!rc)
		rc = router_filter(x, in, h);
	if (rc)
		goto out;
	switch (in->codec_type) {
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP1:
		h->codec = PX_CODEC_HTTP1;
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2:
		h->codec = PX_CODEC_HTTP2;
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__AUTO:
		h->codec = PX_CODEC_AUTO;
		break;
	default:
		rc = serr(x, "typed_config.codec_type: HTTP3 is not supported");
		goto out;
	}
	h->server_name =
		arena_strdup(x->a, in->server_name && *in->server_name ? in->server_name : "envoy");
	switch (in->server_header_transformation) {
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__SERVER_HEADER_TRANSFORMATION__APPEND_IF_ABSENT:
		h->server_header = PX_SERVER_APPEND_IF_ABSENT;
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__SERVER_HEADER_TRANSFORMATION__PASS_THROUGH:
		h->server_header = PX_SERVER_PASS_THROUGH;
		break;
	default:
		h->server_header = PX_SERVER_OVERWRITE;
		break;
	}
	h->use_remote_address = in->use_remote_address && in->use_remote_address->value;
	h->xff_num_trusted_hops = in->xff_num_trusted_hops;
	h->skip_xff_append = in->skip_xff_append;
	h->preserve_request_id = in->preserve_external_request_id;
	h->no_generate_request_id = in->generate_request_id && !in->generate_request_id->value;
	h->max_request_headers_kb = in->max_request_headers_kb ? in->max_request_headers_kb->value
							       : PX_HCM_MAX_HEADERS_KB_DEF;
	h->max_headers_count = PX_HCM_MAX_HEADERS_DEF;
	h->idle_timeout_ms = PX_HCM_IDLE_MS_DEF;
	if (in->common_http_protocol_options) {
		const Envoy__Config__Core__V3__HttpProtocolOptions *o =
			in->common_http_protocol_options;

		if (o->max_headers_count)
			h->max_headers_count = o->max_headers_count->value;
		/* 0s disables it; the proxy has no "never", so the longest we can hold. */
		if (is_zero_duration(o->idle_timeout))
			h->idle_timeout_ms = UINT32_MAX;
		else if (o->idle_timeout)
			h->idle_timeout_ms = ms_of(o->idle_timeout);
	}
	if (is_zero_duration(in->stream_idle_timeout))
		h->stream_idle_timeout_ms = UINT32_MAX;
	else
		h->stream_idle_timeout_ms = in->stream_idle_timeout ? ms_of(in->stream_idle_timeout)
								    : PX_HCM_STREAM_IDLE_MS_DEF;
	h->request_timeout_ms = ms_of(in->request_timeout);
	h->drain_timeout_ms = in->drain_timeout ? ms_of(in->drain_timeout) : PX_HCM_DRAIN_MS_DEF;
	/* RFC 8441 extended CONNECT from HTTP/2 clients (SETTINGS_ENABLE_CONNECT_PROTOCOL). */
	h->h2_allow_connect =
		in->http2_protocol_options && in->http2_protocol_options->allow_connect;
	if (in->http2_protocol_options && in->http2_protocol_options->max_concurrent_streams)
		h->h2_max_streams = in->http2_protocol_options->max_concurrent_streams->value;
	rc = hcm_upgrades(x, in, h);
	if (rc)
		goto out;
	if (in->route_specifier_case ==
	    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
		h->rds_name = arena_strdup(x->a, in->rds->route_config_name);
		if (!h->rds_name)
			rc = snomem(x);
	} else if (
		in->route_specifier_case ==
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG) {
		size_t mark = spush(x, "typed_config.route_config");

		h->inline_routes = arena_new(x->a, struct px_route_config, 1);
		rc = h->inline_routes ? route_config(x, in->route_config, h->inline_routes)
				      : snomem(x);
		if (!rc)
			spop(x, mark);
	} else {
		rc = serr(x, "typed_config: needs rds or route_config");
	}
out:
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

static int chain_match(struct sctx *x, const FilterChainMatch *in, struct px_filter_chain_match *m)
{
	size_t mark = spush(x, "filter_chain_match");
	int rc;

	if (in->destination_port)
		m->dst_port = in->destination_port->value;
	if (in->n_direct_source_prefix_ranges)
		return serr(x, "direct_source_prefix_ranges is not supported");
	if (in->source_type)
		return serr(x, "source_type is not supported");
	rc = cidrs(x, in->prefix_ranges, in->n_prefix_ranges, "prefix_ranges", &m->prefix_ranges,
		   &m->nprefix_ranges);
	if (!rc)
		rc = cidrs(x, in->source_prefix_ranges, in->n_source_prefix_ranges,
			   "source_prefix_ranges", &m->source_prefix_ranges,
			   &m->nsource_prefix_ranges);
	if (rc)
		return rc;
	if (in->n_source_ports) {
		m->source_ports = arena_new(x->a, __u16, in->n_source_ports);
		if (!m->source_ports)
			return snomem(x);
		for (size_t i = 0; i < in->n_source_ports; i++) {
			if (in->source_ports[i] > 65535)
				return serr(x, "source_ports[%zu]: %u is out of range", i,
					    in->source_ports[i]);
			m->source_ports[i] = (__u16)in->source_ports[i];
		}
		m->nsource_ports = (uint32_t)in->n_source_ports;
	}
	m->transport_protocol = sdup(x, in->transport_protocol);
	if (in->n_server_names) {
		m->server_names =
			strv(x, in->server_names, in->n_server_names, &m->nserver_names, 1);
		if (!m->server_names)
			return snomem(x);
	}
	if (in->n_application_protocols) {
		m->application_protocols =
			strv(x, in->application_protocols, in->n_application_protocols,
			     &m->napplication_protocols, 0);
		if (!m->application_protocols)
			return snomem(x);
	}
	spop(x, mark);
	return 0;
}

static int filter_chain(struct sctx *x, const FilterChain *in, struct px_filter_chain *fc)
{
	const Envoy__Config__Listener__V3__Filter *f;
	size_t mark;
	int rc;

	fc->name = sdup(x, in->name);
	fc->hash = pbhash_message(&in->base, NULL, 0);
	if (in->filter_chain_match) {
		rc = chain_match(x, in->filter_chain_match, &fc->match);
		if (rc)
			return rc;
	}
	if (in->transport_socket) {
		mark = spush(x, "transport_socket");
		rc = transport_socket(x, in->transport_socket, true, &fc->transport);
		if (rc)
			return rc;
		spop(x, mark);
	}
	if (!in->n_filters)
		return serr(x, "a filter chain needs at least one filter");
	/* xdsres.c has checked that the terminal filter is last and the others are known. */
	for (size_t i = 0; i + 1 < in->n_filters; i++) {
		f = in->filters[i];
		mark = spush(x, "filters[%zu]", i);
		if (f->typed_config &&
		    !strcmp(type_name_of(f->typed_config->type_url), NET_RBAC_TYPE)) {
			rc = rbac_filter_add(x, &fc->rbac, &fc->nrbac, in->n_filters, f->name,
					     f->typed_config, net_rbac_filter);
			if (rc)
				return rc;
		}
		spop(x, mark);
	}
	f = in->filters[in->n_filters - 1];
	mark = spush(x, "filters[%zu]", in->n_filters - 1);
	if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
		return serr(x, "needs a typed_config");
	if (!strcmp(type_name_of(f->typed_config->type_url), HCM_TYPE)) {
		fc->kind = PX_NF_HTTP;
		rc = hcm(x, f->typed_config, &fc->http);
	} else if (!strcmp(type_name_of(f->typed_config->type_url), TCP_PROXY_TYPE)) {
		fc->kind = PX_NF_TCP_PROXY;
		spush(x, "typed_config");
		rc = tcp_proxy(x, f->typed_config, &fc->tcp);
	} else {
		rc = serr(x, "the last filter must be http_connection_manager or tcp_proxy");
	}
	if (!rc)
		spop(x, mark);
	return rc;
}

static int listener(struct sctx *x, const Listener *in, struct px_listener *l)
{
	/* The chains have fingerprints of their own (filter_chain): a listener that changed only
	 * in its chains is updated in place, as Envoy does. */
	static const char *const chains[] = {"filter_chains", "default_filter_chain"};
	size_t mark;
	int rc = 0;

	l->name = arena_strdup(x->a, in->name);
	if (!l->name)
		return snomem(x);
	l->hash = pbhash_message(&in->base, chains, 2);
	if (in->listener_specifier_case ==
	    ENVOY__CONFIG__LISTENER__V3__LISTENER__LISTENER_SPECIFIER_INTERNAL_LISTENER)
		return serr(x, "internal_listener is not supported");
	if (in->api_listener)
		return serr(x, "api_listener is not supported");
	if (in->filter_chain_matcher)
		return serr(x, "filter_chain_matcher is not supported (use filter_chain_match)");
	rc = address(x, in->address, "address", &l->addr, &l->port);
	if (rc)
		return rc;
	l->use_original_dst = in->use_original_dst && in->use_original_dst->value;
	/* bind_to_port, or the older deprecated_v1.bind_to_port istiod still writes; default true. */
	l->bind_to_port = !(in->bind_to_port && !in->bind_to_port->value) &&
			  !(in->deprecated_v1 && in->deprecated_v1->bind_to_port &&
			    !in->deprecated_v1->bind_to_port->value);
	for (size_t i = 0; i < in->n_listener_filters; i++) {
		const Envoy__Config__Listener__V3__ListenerFilter *f = in->listener_filters[i];
		const char *type = f->typed_config ? type_name_of(f->typed_config->type_url) : "";
		const char *name = f->name ? f->name : "";

		struct px_filter_disabled *off = NULL;

		if (strstr(type, "tls_inspector") ||
		    !strcmp(name, "envoy.filters.listener.tls_inspector")) {
			l->tls_inspector = true;
			off = &l->tls_inspector_off;
		} else if (strstr(type, "http_inspector") ||
			   !strcmp(name, "envoy.filters.listener.http_inspector")) {
			l->http_inspector = true;
			off = &l->http_inspector_off;
		}
		if (off && f->filter_disabled) {
			mark = spush(x, "listener_filters[%zu].filter_disabled", i);
			rc = filter_disabled(x, f->filter_disabled, off);
			if (rc)
				return rc;
			spop(x, mark);
		}
		/* original_dst: the proxy always knows the original destination. */
	}
	l->listener_filters_timeout_ms = in->listener_filters_timeout
						 ? ms_of(in->listener_filters_timeout)
						 : PX_LISTENER_FILTERS_TIMEOUT_MS_DEF;
	l->continue_on_listener_filters_timeout = in->continue_on_listener_filters_timeout;
	if (in->n_filter_chains) {
		l->chains = arena_new(x->a, struct px_filter_chain, in->n_filter_chains);
		if (!l->chains)
			return snomem(x);
	}
	for (size_t i = 0; i < in->n_filter_chains && !rc; i++) {
		mark = spush(x, "filter_chains[%zu]", i);
		rc = filter_chain(x, in->filter_chains[i], &l->chains[i]);
		if (!rc)
			spop(x, mark);
	}
	l->nchains = (uint32_t)in->n_filter_chains;
	if (!rc && in->default_filter_chain) {
		mark = spush(x, "default_filter_chain");
		l->default_chain = arena_new(x->a, struct px_filter_chain, 1);
		rc = l->default_chain ? filter_chain(x, in->default_filter_chain, l->default_chain)
				      : snomem(x);
		if (!rc)
			spop(x, mark);
	}
	return rc;
}

/* ---- clusters ------------------------------------------------------------------------------- */

/* A STRICT_DNS endpoint whose address is a name rather than an IP address. */
static int dns_name(const struct px_cluster *c, const Address *a)
{
	struct shunt_addr probe;

	return c->type == PX_CLUSTER_STRICT_DNS && a &&
	       a->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS &&
	       a->socket_address->address && *a->socket_address->address &&
	       addr_parse(&probe, a->socket_address->address) != 0;
}

static int dns_target(struct sctx *x, const Envoy__Config__Endpoint__V3__LbEndpoint *lb,
		      uint32_t priority, const char *locality, struct px_dns_target *d)
{
	const SocketAddress *sa = lb->endpoint->address->socket_address;
	size_t mark = spush(x, "address.socket_address");

	if (sa->port_specifier_case !=
		    ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE ||
	    sa->port_value < 1 || sa->port_value > 65535)
		return serr(x, "port_value: %u is out of range 1..65535", sa->port_value);
	d->hostname = arena_strdup(x->a, sa->address);
	if (!d->hostname)
		return snomem(x);
	d->port = (__u16)sa->port_value;
	d->weight = lb->load_balancing_weight && lb->load_balancing_weight->value
			    ? lb->load_balancing_weight->value
			    : 1;
	d->priority = priority;
	d->locality = locality;
	spop(x, mark);
	return 0;
}

static int endpoints(struct sctx *x, const ClusterLoadAssignment *cla, struct px_cluster *c)
{
	size_t n = 0, k = 0;

	if (cla->policy && cla->policy->overprovisioning_factor) {
		if (!cla->policy->overprovisioning_factor->value)
			return serr(x, "policy.overprovisioning_factor: must be above 0");
		c->overprovisioning_pct = cla->policy->overprovisioning_factor->value;
	}
	for (size_t i = 0; i < cla->n_endpoints; i++) {
		if (cla->endpoints[i]->priority >= PX_LB_MAX_PRIORITIES)
			return serr(x, "endpoints[%zu].priority: %u is above the limit of %u", i,
				    cla->endpoints[i]->priority, PX_LB_MAX_PRIORITIES - 1);
		n += cla->endpoints[i]->n_lb_endpoints;
	}
	if (!n)
		return 0;
	c->endpoints = arena_new(x->a, struct px_endpoint, n);
	if (c->type == PX_CLUSTER_STRICT_DNS)
		c->dns_targets = arena_new(x->a, struct px_dns_target, n);
	if (!c->endpoints || (c->type == PX_CLUSTER_STRICT_DNS && !c->dns_targets))
		return snomem(x);
	for (size_t i = 0; i < cla->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = cla->endpoints[i];
		const char *locality = NULL;

		if (le->locality &&
		    (le->locality->region || le->locality->zone || le->locality->sub_zone)) {
			char buf[512];

			snprintf(buf, sizeof(buf), "%s/%s/%s",
				 le->locality->region ? le->locality->region : "",
				 le->locality->zone ? le->locality->zone : "",
				 le->locality->sub_zone ? le->locality->sub_zone : "");
			locality = arena_strdup(x->a, buf);
			if (!locality)
				return snomem(x);
		}
		for (size_t j = 0; j < le->n_lb_endpoints; j++) {
			const Envoy__Config__Endpoint__V3__LbEndpoint *lb = le->lb_endpoints[j];
			struct px_endpoint *e;
			size_t mark = spush(x, "endpoints[%zu].lb_endpoints[%zu]", i, j);
			int rc;

			if (lb->host_identifier_case !=
				    ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
			    !lb->endpoint)
				return serr(x, "needs endpoint.address");
			spush(x, "endpoint");
			if (dns_name(c, lb->endpoint->address)) {
				rc = dns_target(x, lb, le->priority, locality,
						&c->dns_targets[c->ndns_targets++]);
				if (rc)
					return rc;
				spop(x, mark);
				continue;
			}
			e = &c->endpoints[k++];
			rc = address(x, lb->endpoint->address, "address", &e->addr, &e->port);
			if (rc)
				return rc;
			spop(x, mark);
			e->weight = lb->load_balancing_weight && lb->load_balancing_weight->value
					    ? lb->load_balancing_weight->value
					    : 1;
			e->priority = le->priority;
			e->locality_weight =
				le->load_balancing_weight ? le->load_balancing_weight->value : 0;
			e->healthy = lb->health_status ==
					     ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN ||
				     lb->health_status ==
					     ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
			e->locality = locality;
			e->transport = endpoint_transport(x, lb->metadata);
		}
	}
	c->nendpoints = (uint32_t)k;
	return 0;
}

static int upstream_http_options(struct sctx *x, const Cluster *in, struct px_cluster *c)
{
	const Envoy__Config__Core__V3__HttpProtocolOptions *common =
		in->common_http_protocol_options;
	ProtobufCMessage *msg = NULL;
	int rc = 0;

	if (in->http2_protocol_options)
		c->http2 = true;
	if (in->protocol_selection ==
	    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_PROTOCOL_SELECTION__USE_DOWNSTREAM_PROTOCOL) {
		c->use_downstream_protocol = true;
		c->http2 = false;
	}
	for (size_t i = 0; i < in->n_typed_extension_protocol_options; i++) {
		const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
			in->typed_extension_protocol_options[i];
		size_t mark =
			spush(x, "typed_extension_protocol_options[\"%s\"]", e->key ? e->key : "");

		if (!e->key || strcmp(e->key, UPSTREAM_HTTP_OPTIONS) || !e->value)
			return serr(x, "is not supported");
		rc = unpack(x, e->value, UPSTREAM_HTTP_OPTIONS, &msg);
		if (rc)
			return rc;
		spop(x, mark);
	}
	if (msg) {
		const UpstreamHttpOptions *o = (const UpstreamHttpOptions *)msg;

		if (o->upstream_protocol_options_case ==
		    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG) {
			switch (o->explicit_http_config->protocol_config_case) {
			case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP3_PROTOCOL_OPTIONS:
				rc = serr(x,
					  "typed_extension_protocol_options[\"%s\"]."
					  "explicit_http_config: HTTP/3 is not supported",
					  UPSTREAM_HTTP_OPTIONS);
				break;
			case ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS:
				c->http2 = true;
				break;
			default:
				c->http2 = false;
				break;
			}
		}
		if (o->upstream_protocol_options_case ==
		    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_USE_DOWNSTREAM_PROTOCOL_CONFIG) {
			c->use_downstream_protocol = true;
			c->http2 = false;
		}
		/* auto_config picks by ALPN, which only TLS has; plaintext stays HTTP/1.1 (Envoy
		 * would need http2_protocol_options with prior knowledge there). */
		if (o->upstream_protocol_options_case ==
		    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_AUTO_CONFIG)
			c->alpn_auto = true;
		if (o->common_http_protocol_options)
			common = o->common_http_protocol_options;
	}
	if (!rc && common) {
		c->upstream_idle_timeout_ms = ms_of(common->idle_timeout);
		if (common->max_requests_per_connection)
			c->max_requests_per_connection = common->max_requests_per_connection->value;
	}
	if (!rc && in->max_requests_per_connection && !c->max_requests_per_connection)
		c->max_requests_per_connection = in->max_requests_per_connection->value;
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

static bool is_ads_cluster(const struct sctx *x, const char *name)
{
	const char *ads = bootstrap_ads_cluster(x->cfg);

	return ads && name && !strcmp(ads, name);
}

/* filter_metadata "shunt": {"kernel_lb": true} lets a cluster's L4-only services be balanced by
 * the kernel (agent/svcmap.c's rule); without it, or false, the proxy serves them. */
static int cluster_kernel_lb(struct sctx *x, const Cluster *in, struct px_cluster *c)
{
	const Envoy__Config__Core__V3__Metadata *md = in->metadata;

	for (size_t i = 0; md && i < md->n_filter_metadata; i++) {
		const Google__Protobuf__Struct *st = md->filter_metadata[i]->value;

		if (strcmp(md->filter_metadata[i]->key, "shunt") != 0 || !st)
			continue;
		for (size_t k = 0; k < st->n_fields; k++) {
			const Google__Protobuf__Value *v = st->fields[k]->value;

			if (strcmp(st->fields[k]->key, "kernel_lb") != 0)
				continue;
			if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE)
				return serr(x, "metadata.filter_metadata.shunt.kernel_lb: must be "
					       "true or false");
			c->kernel_lb = v->bool_value;
		}
	}
	return 0;
}

/* The addresses the agent's resolver knows for the cluster's names become endpoints, with the
 * port, weight, priority and locality their lb_endpoint gave; LOGICAL_DNS takes the first one. */
static int resolved_endpoints(struct sctx *x, struct px_cluster *c)
{
	struct shunt_addr got[XDS_DNS_MAX_ADDRS];
	uint32_t total = c->nendpoints;
	struct px_endpoint *all;

	if (!c->ndns_targets)
		return 0;
	all = arena_new(x->a, struct px_endpoint,
			c->nendpoints + c->ndns_targets * XDS_DNS_MAX_ADDRS);
	if (!all)
		return snomem(x);
	if (c->nendpoints)
		memcpy(all, c->endpoints, c->nendpoints * sizeof(*all));
	for (uint32_t i = 0; i < c->ndns_targets; i++) {
		const struct px_dns_target *t = &c->dns_targets[i];
		int n = x->dns->lookup(x->dns->ctx, t->hostname, (int)c->dns_family, got,
				       XDS_DNS_MAX_ADDRS);

		if (c->logical_dns && n > 1)
			n = 1;
		for (int k = 0; k < n; k++)
			all[total++] = (struct px_endpoint){.addr = got[k],
							    .port = t->port,
							    .weight = t->weight,
							    .priority = t->priority,
							    .healthy = true,
							    .locality = t->locality};
	}
	c->endpoints = all;
	c->nendpoints = total;
	return 0;
}

/* Envoy's dns_failure_refresh_rate: base_interval required and positive, max_interval at least
 * that (unset: ten times base, Envoy's default). */
static int dns_failure_rate(struct sctx *x,
			    const Envoy__Config__Cluster__V3__Cluster__RefreshRate *r,
			    struct px_cluster *c)
{
	size_t mark = spush(x, "dns_failure_refresh_rate");

	c->dns_failure_base_ms = r->base_interval ? ms_of(r->base_interval) : 0;
	if (!c->dns_failure_base_ms)
		return serr(x, "base_interval: required, and more than 0");
	c->dns_failure_max_ms = r->max_interval ? ms_of(r->max_interval)
				: c->dns_failure_base_ms > UINT32_MAX / 10
					? UINT32_MAX
					: c->dns_failure_base_ms * 10;
	if (c->dns_failure_max_ms < c->dns_failure_base_ms)
		return serr(x, "max_interval: less than base_interval");
	spop(x, mark);
	return 0;
}

static int cluster(struct sctx *x, const Cluster *in, struct px_cluster *c)
{
	const struct xds_resource *eds;
	int rc;

	c->name = arena_strdup(x->a, in->name);
	if (!c->name)
		return snomem(x);
	if (in->cluster_discovery_type_case !=
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
	    in->cluster_discovery_type_case !=
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE__NOT_SET)
		return serr(x, "cluster_type: custom cluster types are not supported");
	switch (in->type) {
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
		c->type = PX_CLUSTER_STATIC;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS:
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
		/* Resolved the same way; LOGICAL_DNS uses only the first address. */
		c->logical_dns = in->type ==
				 ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS;
		c->type = PX_CLUSTER_STRICT_DNS;
		if (in->dns_lookup_family >
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__ALL)
			return serr(x, "dns_lookup_family: %d is not a lookup family",
				    in->dns_lookup_family);
		/* Envoy's enum and ours share their order. */
		c->dns_family = (enum px_dns_family)in->dns_lookup_family;
		c->dns_refresh_ms =
			in->dns_refresh_rate ? ms_of(in->dns_refresh_rate) : PX_DNS_REFRESH_MS_DEF;
		if (in->dns_failure_refresh_rate) {
			rc = dns_failure_rate(x, in->dns_failure_refresh_rate, c);
			if (rc)
				return rc;
		}
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS:
		c->type = PX_CLUSTER_EDS;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST:
		c->type = PX_CLUSTER_ORIGINAL_DST;
		break;
	default:
		return serr(x, "type: this discovery type is not supported");
	}
	switch (in->lb_policy) {
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
		c->lb = PX_LB_ROUND_ROBIN;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
		c->lb = PX_LB_LEAST_REQUEST;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
		c->lb = PX_LB_RANDOM;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH:
		c->lb = PX_LB_RING_HASH;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV:
		c->lb = PX_LB_MAGLEV;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED:
		/* Envoy requires it for ORIGINAL_DST clusters; it means "the destination". */
		if (c->type == PX_CLUSTER_ORIGINAL_DST)
			break;
		return serr(x, "lb_policy: CLUSTER_PROVIDED is not supported");
	default:
		return serr(x, "lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported");
	}
	if (in->common_lb_config &&
	    in->common_lb_config->locality_config_specifier_case ==
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__LOCALITY_CONFIG_SPECIFIER_LOCALITY_WEIGHTED_LB_CONFIG)
		c->locality_weighted = true;
	if (in->common_lb_config && in->common_lb_config->healthy_panic_threshold) {
		double v = in->common_lb_config->healthy_panic_threshold->value;

		if (!(v >= 0.0 && v <= 100.0))
			return serr(x,
				    "common_lb_config.healthy_panic_threshold: %g is not a "
				    "percentage",
				    v);
		/* Envoy truncates to whole percents; 0 turns panic off. */
		c->panic_threshold_pct = (uint32_t)v;
		c->panic_disabled = c->panic_threshold_pct == 0;
	}
	if (in->load_balancing_policy)
		return serr(x, "load_balancing_policy is not supported");
	if (in->lb_subset_config && in->lb_subset_config->n_subset_selectors)
		return serr(x, "lb_subset_config is not supported");
	rc = upstream_http_options(x, in, c);
	if (rc)
		return rc;
	x->want_h2 = c->http2;
	x->want_auto = c->alpn_auto && !c->http2;
	/* The ADS cluster's TLS is the agent's own gRPC client's (agent/ads.c), not the proxy's. */
	if (in->transport_socket && !is_ads_cluster(x, in->name)) {
		size_t mark = spush(x, "transport_socket");

		rc = transport_socket(x, in->transport_socket, false, &c->transport);
		if (rc)
			return rc;
		spop(x, mark);
	}
	rc = socket_matches(x, in);
	if (rc)
		return rc;
	c->connect_timeout_ms =
		in->connect_timeout ? ms_of(in->connect_timeout) : XDS_SNAP_CONNECT_TIMEOUT_MS_DEF;
	if (in->circuit_breakers) {
		for (size_t i = 0; i < in->circuit_breakers->n_thresholds; i++) {
			const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
				in->circuit_breakers->thresholds[i];

			if (t->priority != ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT)
				continue;
			/* An absent field is Envoy's default; 0 is a limit of 0. */
			c->cb.set = true;
			c->cb.max_connections =
				t->max_connections ? t->max_connections->value : PX_CB_DEFAULT;
			c->cb.max_pending_requests = t->max_pending_requests
							     ? t->max_pending_requests->value
							     : PX_CB_DEFAULT;
			c->cb.max_requests =
				t->max_requests ? t->max_requests->value : PX_CB_DEFAULT;
			c->cb.max_retries =
				t->max_retries ? t->max_retries->value : PX_CB_RETRIES_DEFAULT;
		}
	}
	rc = cluster_kernel_lb(x, in, c);
	if (rc)
		return rc;
	if (in->upstream_bind_config && in->upstream_bind_config->source_address) {
		struct shunt_addr a;
		size_t mark = spush(x, "upstream_bind_config.source_address");

		rc = socket_address(x, in->upstream_bind_config->source_address, &a, NULL, 0);
		if (rc)
			return rc;
		spop(x, mark);
		if (strchr(in->upstream_bind_config->source_address->address, ':')) {
			c->has_bind6 = true;
			c->bind6 = a;
		} else {
			c->has_bind4 = true;
			c->bind4 = a;
		}
	}
	if (c->type == PX_CLUSTER_EDS) {
		const char *service = in->eds_cluster_config &&
						      in->eds_cluster_config->service_name &&
						      *in->eds_cluster_config->service_name
					      ? in->eds_cluster_config->service_name
					      : in->name;

		eds = xds_config_find(x->cfg, XDS_ENDPOINT, service);
		if (eds) {
			size_t mark = spush(x, "(endpoints \"%s\")", service);

			rc = endpoints(x, (const ClusterLoadAssignment *)eds->msg, c);
			if (rc)
				return rc;
			spop(x, mark);
		}
	} else if (in->load_assignment) {
		size_t mark = spush(x, "load_assignment");

		rc = endpoints(x, in->load_assignment, c);
		if (rc)
			return rc;
		spop(x, mark);
	}
	if (c->logical_dns && c->nendpoints + c->ndns_targets != 1)
		return serr(x, "load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint");
	return x->dns ? resolved_endpoints(x, c) : 0;
}

/* ---- the snapshot --------------------------------------------------------------------------- */

int xds_snapshot_build(const struct xds_config *cfg, uint64_t generation, struct px_snapshot **out,
		       struct jtree_err *err)
{
	return xds_snapshot_build_dns(cfg, generation, NULL, out, err);
}

int xds_snapshot_build_dns(const struct xds_config *cfg, uint64_t generation,
			   const struct xds_dns *dns, struct px_snapshot **out,
			   struct jtree_err *err)
{
	struct sctx x = {.cfg = cfg, .dns = dns, .err = err};
	struct px_snapshot *s;
	const char *ferr;
	int rc = 0;

	memset(err, 0, sizeof(*err));
	*out = NULL;
	if (!cfg->sealed) {
		snprintf(err->msg, sizeof(err->msg), "the xDS config is not sealed");
		return -EINVAL;
	}
	s = px_snapshot_new();
	if (!s) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	x.s = s;
	x.a = &s->arena;
	s->generation = generation;
	sbegin(&x, "snapshot", "");
	if (cfg->n[XDS_CLUSTER])
		s->clusters = arena_new(x.a, struct px_cluster, cfg->n[XDS_CLUSTER]);
	if (cfg->n[XDS_LISTENER])
		s->listeners = arena_new(x.a, struct px_listener, cfg->n[XDS_LISTENER]);
	if (cfg->n[XDS_ROUTE])
		s->route_configs = arena_new(x.a, struct px_route_config, cfg->n[XDS_ROUTE]);
	if ((cfg->n[XDS_CLUSTER] && !s->clusters) || (cfg->n[XDS_LISTENER] && !s->listeners) ||
	    (cfg->n[XDS_ROUTE] && !s->route_configs))
		rc = snomem(&x);
	for (size_t i = 0; i < cfg->n[XDS_CLUSTER] && !rc; i++) {
		sbegin(&x, "cluster", cfg->res[XDS_CLUSTER][i].name);
		rc = cluster(&x, (const Cluster *)cfg->res[XDS_CLUSTER][i].msg, &s->clusters[i]);
		s->nclusters = (uint32_t)i + 1;
	}
	for (size_t i = 0; i < cfg->n[XDS_ROUTE] && !rc; i++) {
		sbegin(&x, "route configuration", cfg->res[XDS_ROUTE][i].name);
		rc = route_config(&x, (const RouteConfiguration *)cfg->res[XDS_ROUTE][i].msg,
				  &s->route_configs[i]);
		s->nroute_configs = (uint32_t)i + 1;
	}
	for (size_t i = 0; i < cfg->n[XDS_LISTENER] && !rc; i++) {
		sbegin(&x, "listener", cfg->res[XDS_LISTENER][i].name);
		rc = listener(&x, (const Listener *)cfg->res[XDS_LISTENER][i].msg,
			      &s->listeners[i]);
		s->nlisteners = (uint32_t)i + 1;
	}
	if (!rc) {
		rc = px_snapshot_finalize(s, &ferr);
		if (rc)
			snprintf(err->msg, sizeof(err->msg), "%s",
				 ferr ? ferr : (rc == -ENOMEM ? "out of memory" : "invalid"));
	}
	if (rc) {
		px_snapshot_put(s);
		return rc;
	}
	*out = s;
	return 0;
}
