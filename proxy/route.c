/* Virtual-host and route matching, regex compilation, retry_on parsing. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "proxy/route.h"

#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/arena.h"

/* ---- regexes ---------------------------------------------------------------------------------- */

/* Compiles src anchored at both ends (Envoy's safe_regex matches the whole value). */
static int compile(struct arena *a, const char *src, bool ignore_case, pcre2_code **out,
		   const char **err)
{
	int code;
	PCRE2_SIZE off;
	uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_NO_AUTO_CAPTURE;

	if (ignore_case)
		opts |= PCRE2_CASELESS;
	*out = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
	if (*out)
		return 0;
	char msg[128], full[256];

	pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
	snprintf(full, sizeof(full), "regex \"%s\": %s at offset %zu", src, msg, (size_t)off);
	*err = arena_strdup(a, full);
	return -EINVAL;
}

static bool regex_match(const pcre2_code *re, const char *s, size_t len)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc;

	if (!md)
		return false;
	rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

int px_string_matcher_prepare(struct arena *a, struct px_string_matcher *m, const char **err)
{
	if (m->kind != PX_STR_REGEX)
		return 0;
	return compile(a, m->value ? m->value : "", m->ignore_case, (pcre2_code **)&m->re, err);
}

int px_route_config_finalize(struct arena *a, struct px_route_config *rc, const char **err)
{
	*err = NULL;
	for (uint32_t v = 0; v < rc->nvhosts; v++) {
		struct px_vhost *vh = &rc->vhosts[v];

		for (uint32_t r = 0; r < vh->nroutes; r++) {
			struct px_route *rt = &vh->routes[r];
			struct px_route_match *m = &rt->match;

			if (m->kind == PX_PATH_REGEX &&
			    compile(a, m->path, m->case_insensitive, (pcre2_code **)&m->re, err))
				return -EINVAL;
			for (uint32_t h = 0; h < m->nheaders; h++)
				if (m->headers[h].kind == PX_HDR_STRING &&
				    px_string_matcher_prepare(a, &m->headers[h].str, err))
					return -EINVAL;
			for (uint32_t q = 0; q < m->nquery; q++)
				if (!m->query[q].present_only &&
				    px_string_matcher_prepare(a, &m->query[q].str, err))
					return -EINVAL;
			if (rt->action.regex_rewrite_pattern) {
				/* A rewrite replaces every match, not just a whole-path one. */
				int code;
				PCRE2_SIZE off;

				rt->action.rewrite_re = (struct pcre2_real_code_8 *)pcre2_compile(
					(PCRE2_SPTR)rt->action.regex_rewrite_pattern,
					PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
				if (!rt->action.rewrite_re) {
					*err = arena_strdup(a,
							    "regex_rewrite: the pattern does not "
							    "compile");
					return -EINVAL;
				}
			}
			uint32_t total = 0;

			for (uint32_t w = 0; w < rt->action.nweighted; w++)
				total += rt->action.weighted[w].weight;
			rt->action.total_weight = total;
			if (rt->kind == PX_ROUTE_REDIRECT && !rt->redirect.response_code)
				rt->redirect.response_code = 301;
		}
	}
	return 0;
}

void px_string_matcher_release(struct px_string_matcher *m)
{
	pcre2_code_free((pcre2_code *)m->re);
	m->re = NULL;
}

void px_route_config_release(struct px_route_config *rc)
{
	for (uint32_t v = 0; v < rc->nvhosts; v++) {
		struct px_vhost *vh = &rc->vhosts[v];

		for (uint32_t r = 0; r < vh->nroutes; r++) {
			struct px_route_match *m = &vh->routes[r].match;

			pcre2_code_free((pcre2_code *)m->re);
			m->re = NULL;
			for (uint32_t h = 0; h < m->nheaders; h++)
				px_string_matcher_release(&m->headers[h].str);
			for (uint32_t q = 0; q < m->nquery; q++)
				px_string_matcher_release(&m->query[q].str);
			pcre2_code_free((pcre2_code *)vh->routes[r].action.rewrite_re);
			vh->routes[r].action.rewrite_re = NULL;
		}
	}
}

/* ---- strings ---------------------------------------------------------------------------------- */

static bool eq(const char *a, size_t alen, const char *b, size_t blen, bool ci)
{
	if (alen != blen)
		return false;
	return ci ? strncasecmp(a, b, alen) == 0 : memcmp(a, b, alen) == 0;
}

static bool has_prefix(const char *s, size_t len, const char *p, size_t plen, bool ci)
{
	return len >= plen && eq(s, plen, p, plen, ci);
}

static bool has_suffix(const char *s, size_t len, const char *p, size_t plen, bool ci)
{
	return len >= plen && eq(s + len - plen, plen, p, plen, ci);
}

static bool contains(const char *s, size_t len, const char *p, size_t plen, bool ci)
{
	for (size_t i = 0; i + plen <= len; i++)
		if (eq(s + i, plen, p, plen, ci))
			return true;
	return false;
}

bool px_string_match(const struct px_string_matcher *m, const char *s, size_t len)
{
	const char *v = m->value ? m->value : "";
	size_t vlen = strlen(v);

	switch (m->kind) {
	case PX_STR_EXACT:
		return eq(s, len, v, vlen, m->ignore_case);
	case PX_STR_PREFIX:
		return has_prefix(s, len, v, vlen, m->ignore_case);
	case PX_STR_SUFFIX:
		return has_suffix(s, len, v, vlen, m->ignore_case);
	case PX_STR_CONTAINS:
		return contains(s, len, v, vlen, m->ignore_case);
	case PX_STR_REGEX:
		return m->re && regex_match((const pcre2_code *)m->re, s, len);
	}
	return false;
}

/* ---- virtual hosts ---------------------------------------------------------------------------- */

const struct px_vhost *px_vhost_match(const struct px_route_config *rc, const char *authority,
				      size_t len)
{
	const struct px_vhost *suffix = NULL, *prefix = NULL, *any = NULL;
	size_t suffix_len = 0, prefix_len = 0;

	for (uint32_t v = 0; v < rc->nvhosts; v++) {
		const struct px_vhost *vh = &rc->vhosts[v];

		for (uint32_t d = 0; d < vh->ndomains; d++) {
			const char *dom = vh->domains[d];
			size_t dl = strlen(dom);

			if (dl == 1 && dom[0] == '*') {
				if (!any)
					any = vh;
			} else if (dom[0] == '*') {
				/* "*.foo.com" or "*-bar.foo.com": the rest must be a proper suffix. */
				if (len > dl - 1 &&
				    has_suffix(authority, len, dom + 1, dl - 1, true) &&
				    dl > suffix_len) {
					suffix = vh;
					suffix_len = dl;
				}
			} else if (dom[dl - 1] == '*') {
				if (len > dl - 1 && has_prefix(authority, len, dom, dl - 1, true) &&
				    dl > prefix_len) {
					prefix = vh;
					prefix_len = dl;
				}
			} else if (eq(authority, len, dom, dl, true)) {
				return vh;
			}
		}
	}
	return suffix ? suffix : prefix ? prefix : any;
}

/* ---- routes ----------------------------------------------------------------------------------- */

const char *px_req_header(const struct px_req_view *r, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	if (name[0] == ':') {
		struct {
			const char *n, *v;
			size_t l;
		} pseudo[] = {{":method", r->method, r->method_len},
			      {":authority", r->authority, r->authority_len},
			      {":path", r->path, r->path_len},
			      {":scheme", r->scheme, r->scheme_len}};

		for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++) {
			if (strcmp(name, pseudo[i].n) == 0) {
				*len = pseudo[i].l;
				return pseudo[i].v;
			}
		}
		return NULL;
	}
	for (uint32_t i = 0; i < r->nhdrs; i++) {
		if (eq(r->hdrs[i].name, r->hdrs[i].name_len, name, nl, true)) {
			*len = r->hdrs[i].value_len;
			return r->hdrs[i].value;
		}
	}
	return NULL;
}

bool px_header_match(const struct px_header_matcher *m, const struct px_req_view *r)
{
	size_t len = 0;
	const char *v = px_req_header(r, m->name, &len);
	bool hit;

	if (!v && m->treat_missing_as_empty && m->kind != PX_HDR_PRESENT) {
		v = "";
		len = 0;
	}
	switch (m->kind) {
	case PX_HDR_PRESENT:
		hit = (v != NULL) == m->present;
		break;
	case PX_HDR_RANGE: {
		char buf[32];
		char *end;
		long long n;

		if (!v || len == 0 || len >= sizeof(buf)) {
			hit = false;
			break;
		}
		memcpy(buf, v, len);
		buf[len] = '\0';
		n = strtoll(buf, &end, 10);
		hit = *end == '\0' && n >= m->range_start && n < m->range_end;
		break;
	}
	case PX_HDR_STRING:
	default:
		hit = v && px_string_match(&m->str, v, len);
		break;
	}
	/* Envoy: an absent header fails the match even when inverted (unless treated as ""). */
	if (!v && m->kind != PX_HDR_PRESENT)
		return false;
	return m->invert ? !hit : hit;
}

/* Finds name in the query string (after '?'); *val points into the path, undecoded. */
static bool query_param(const char *q, size_t qlen, const char *name, const char **val,
			size_t *vlen)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < qlen;) {
		size_t end = i;

		while (end < qlen && q[end] != '&')
			end++;
		const char *eqs = memchr(q + i, '=', end - i);
		size_t keylen = eqs ? (size_t)(eqs - (q + i)) : end - i;

		if (keylen == nl && memcmp(q + i, name, nl) == 0) {
			*val = eqs ? eqs + 1 : q + end;
			*vlen = eqs ? (size_t)(q + end - (eqs + 1)) : 0;
			return true;
		}
		i = end + 1;
	}
	return false;
}

static bool path_matches(const struct px_route_match *m, const char *path, size_t len)
{
	const char *p = m->path ? m->path : "";
	size_t plen = strlen(p);

	switch (m->kind) {
	case PX_PATH_PREFIX:
		return has_prefix(path, len, p, plen, m->case_insensitive);
	case PX_PATH_EXACT:
		return eq(path, len, p, plen, m->case_insensitive);
	case PX_PATH_SEPARATED_PREFIX:
		return has_prefix(path, len, p, plen, m->case_insensitive) &&
		       (len == plen || path[plen] == '/');
	case PX_PATH_REGEX:
		return m->re && regex_match((const pcre2_code *)m->re, path, len);
	case PX_PATH_CONNECT:
		return true; /* the method was checked by the caller */
	}
	return false;
}

static const struct px_upgrade *upgrade_find(const struct px_upgrade *u, uint32_t n,
					     const char *type, size_t len)
{
	for (uint32_t i = 0; i < n; i++)
		if (u[i].type && eq(type, len, u[i].type, strlen(u[i].type), true))
			return &u[i];
	return NULL;
}

bool px_upgrade_allowed(const struct px_upgrade *hcm, uint32_t nhcm, const struct px_upgrade *route,
			uint32_t nroute, const char *type, size_t len)
{
	const struct px_upgrade *h = upgrade_find(hcm, nhcm, type, len);
	const struct px_upgrade *r = upgrade_find(route, nroute, type, len);

	if (!h)
		return false;
	return r ? r->enabled : h->enabled;
}

const struct px_route *px_route_match(const struct px_vhost *vh, const struct px_req_view *r)
{
	const char *q = r->path_len ? memchr(r->path, '?', r->path_len) : NULL;
	size_t path_len = q ? (size_t)(q - r->path) : r->path_len;
	const char *query = q ? q + 1 : "";
	size_t qlen = q ? r->path_len - path_len - 1 : 0;
	bool is_connect = r->method_len == 7 && !memcmp(r->method, "CONNECT", 7);

	for (uint32_t i = 0; i < vh->nroutes; i++) {
		const struct px_route *rt = &vh->routes[i];
		const struct px_route_match *m = &rt->match;
		/* CONNECT has no path: only connect_matcher routes take it, and nothing else. */
		bool ok = (m->kind == PX_PATH_CONNECT) == is_connect &&
			  path_matches(m, r->path, path_len);

		for (uint32_t h = 0; ok && h < m->nheaders; h++)
			ok = px_header_match(&m->headers[h], r);
		for (uint32_t k = 0; ok && k < m->nquery; k++) {
			const char *v;
			size_t vlen;

			ok = query_param(query, qlen, m->query[k].name, &v, &vlen) &&
			     (m->query[k].present_only ||
			      px_string_match(&m->query[k].str, v, vlen));
		}
		if (ok)
			return rt;
	}
	return NULL;
}

/* ---- retry_on --------------------------------------------------------------------------------- */

/* Every retry_on name Envoy knows; grpc: one of the gRPC conditions, which a route's retry_on
 * lists with the others but a request names in x-envoy-retry-grpc-on only. */
static const struct {
	const char *name;
	uint32_t bit;
	bool grpc;
} retry_names[] = {
	{"5xx", PX_RETRY_5XX, false},
	{"gateway-error", PX_RETRY_GATEWAY_ERROR, false},
	{"reset", PX_RETRY_RESET, false},
	{"connect-failure", PX_RETRY_CONNECT_FAILURE, false},
	{"refused-stream", PX_RETRY_REFUSED_STREAM, false},
	{"retriable-4xx", PX_RETRY_RETRIABLE_4XX, false},
	{"retriable-status-codes", PX_RETRY_RETRIABLE_STATUS_CODES, false},
	{"unavailable", PX_RETRY_UNAVAILABLE, true},
	{"cancelled", PX_RETRY_CANCELLED, true},
	{"deadline-exceeded", PX_RETRY_DEADLINE_EXCEEDED, true},
	{"resource-exhausted", PX_RETRY_RESOURCE_EXHAUSTED, true},
	{"internal", PX_RETRY_INTERNAL, true},
	/* Envoy's, for failures the proxy cannot see: no rate limit filter answers 429
	 * here, and no upstream speaks HTTP/3. Accepted; they never match. */
	{"envoy-ratelimited", 0, false},
	{"http3-post-connect-failure", 0, false},
	/* Envoy's, not acted on (xds_snapshot.c warns): a narrower reset, and matching on
	 * retriable_headers. */
	{"reset-before-request", 0, false},
	{"retriable-headers", 0, false},
};

/* The entry named by p[0..len), or -1. */
static int retry_name(const char *p, size_t len)
{
	for (size_t i = 0; i < sizeof(retry_names) / sizeof(retry_names[0]); i++)
		if (strlen(retry_names[i].name) == len && !memcmp(p, retry_names[i].name, len))
			return (int)i;
	return -1;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int px_retry_on_parse(const char *list, uint32_t *bits, const char **bad)
{
	*bits = 0;
	*bad = NULL;
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");
		size_t s = 0, e = len;
		int i;

		while (s < e && p[s] == ' ')
			s++;
		while (e > s && p[e - 1] == ' ')
			e--;
		i = e > s ? retry_name(p + s, e - s) : -1;
		if (i >= 0) {
			*bits |= retry_names[i].bit;
		} else if (e > s) {
			*bad = p + s;
			return -EINVAL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

uint32_t px_retry_on_header(const char *v, size_t len, bool grpc)
{
	uint32_t bits = 0;
	size_t pos = 0;

	while (v && pos < len) {
		size_t s = pos, e;
		int i;

		while (pos < len && v[pos] != ',')
			pos++;
		e = pos++;
		while (s < e && is_ows(v[s]))
			s++;
		while (e > s && is_ows(v[e - 1]))
			e--;
		i = e > s ? retry_name(v + s, e - s) : -1;
		/* Envoy ignores a name it does not know, or of the other header's kind. */
		if (i >= 0 && retry_names[i].grpc == grpc)
			bits |= retry_names[i].bit;
	}
	return bits;
}

bool px_header_uint(const char *v, size_t len, uint64_t *out)
{
	size_t s = 0, e = len;
	uint64_t n = 0;

	while (s < e && is_ows(v[s]))
		s++;
	while (e > s && is_ows(v[e - 1]))
		e--;
	if (s < e && v[s] == '+')
		s++;
	if (s == e)
		return false;
	for (; s < e; s++) {
		unsigned d = (unsigned char)v[s] - '0';

		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = n;
	return true;
}

uint32_t px_status_codes_header(const char *v, size_t len, uint16_t *codes, uint32_t n,
				uint32_t max, bool *dropped)
{
	size_t pos = 0;

	while (v && pos < len) {
		size_t s = pos;
		uint64_t code;

		while (pos < len && v[pos] != ',')
			pos++;
		/* Any unsigned number is kept by Envoy; none past 65535 can match a status. */
		if (px_header_uint(v + s, pos - s, &code) && code <= UINT16_MAX) {
			if (n == max) {
				*dropped = true;
				break;
			}
			codes[n++] = (uint16_t)code;
		}
		pos++;
	}
	return n;
}

bool px_retry_on_response(const struct px_retry_policy *rp, int status, int grpc_status)
{
	uint32_t on = rp ? rp->retry_on : 0;

	if ((on & PX_RETRY_5XX) && status >= 500 && status <= 599)
		return true;
	if ((on & PX_RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
		return true;
	if ((on & PX_RETRY_RETRIABLE_4XX) && status == 409)
		return true;
	for (uint32_t i = 0;
	     (on & PX_RETRY_RETRIABLE_STATUS_CODES) && i < rp->nretriable_status_codes; i++)
		if (rp->retriable_status_codes[i] == status)
			return true;
	/* Envoy reads grpc-status from the response headers whatever the HTTP status: a
	 * trailers-only response is a 200 that carries its status in its head. */
	switch (grpc_status) {
	case PX_GRPC_CANCELLED:
		return on & PX_RETRY_CANCELLED;
	case PX_GRPC_DEADLINE_EXCEEDED:
		return on & PX_RETRY_DEADLINE_EXCEEDED;
	case PX_GRPC_RESOURCE_EXHAUSTED:
		return on & PX_RETRY_RESOURCE_EXHAUSTED;
	case PX_GRPC_INTERNAL:
		return on & PX_RETRY_INTERNAL;
	case PX_GRPC_UNAVAILABLE:
		return on & PX_RETRY_UNAVAILABLE;
	default:
		return false;
	}
}

bool px_retry_on_reset(const struct px_retry_policy *rp, enum px_upstream_reset r)
{
	uint32_t on = rp ? rp->retry_on : 0;

	/* Envoy counts every reset as a 5xx (it becomes a 503), and `reset` as covering them
	 * all, connect failures and refused streams included. */
	if (on & (PX_RETRY_RESET | PX_RETRY_5XX | PX_RETRY_GATEWAY_ERROR))
		return true;
	if (r == PX_RESET_REFUSED_STREAM)
		return on & PX_RETRY_REFUSED_STREAM;
	if (r == PX_RESET_CONNECT_FAILURE || r == PX_RESET_CONNECT_TIMEOUT)
		return on & PX_RETRY_CONNECT_FAILURE;
	return false;
}
