/* Envoy's RBAC engine: evaluates permission and principal trees (see rbac.h). */
#include "proxy/rbac.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http.h"

static bool node_match(const struct px_rbac_node *n, const struct px_rbac_input *in);

static bool any_match(const struct px_rbac_node *v, uint32_t n, const struct px_rbac_input *in)
{
	for (uint32_t i = 0; i < n; i++)
		if (node_match(&v[i], in))
			return true;
	return false;
}

static bool all_match(const struct px_rbac_node *v, uint32_t n, const struct px_rbac_input *in)
{
	for (uint32_t i = 0; i < n; i++)
		if (!node_match(&v[i], in))
			return false;
	return true;
}

static bool node_match(const struct px_rbac_node *n, const struct px_rbac_input *in)
{
	switch (n->kind) {
	case PX_RBAC_ANY:
		return true;
	case PX_RBAC_AND:
		return all_match(n->set.v, n->set.n, in);
	case PX_RBAC_OR:
		return any_match(n->set.v, n->set.n, in);
	case PX_RBAC_NOT:
		return !node_match(n->negated, in);
	case PX_RBAC_HEADER:
		return in->req && px_header_match(&n->header, in->req);
	case PX_RBAC_URL_PATH: {
		const char *q;
		size_t len;

		if (!in->req || !in->req->path)
			return false;
		/* Envoy matches the path without its query (and fragment). */
		q = memchr(in->req->path, '?', in->req->path_len);
		len = q ? (size_t)(q - in->req->path) : in->req->path_len;
		q = memchr(in->req->path, '#', len);
		if (q)
			len = (size_t)(q - in->req->path);
		return px_string_match(&n->str, in->req->path, len);
	}
	case PX_RBAC_DST_IP:
		return in->dst && px_cidr_contains(&n->cidr, in->dst);
	case PX_RBAC_DST_PORT:
		return in->dst_port >= n->ports.lo && in->dst_port < n->ports.hi;
	case PX_RBAC_SNI:
		return px_string_match(&n->str, in->sni ? in->sni : "",
				       in->sni ? strlen(in->sni) : 0);
	case PX_RBAC_AUTHENTICATED:
		if (!in->authenticated)
			return false;
		if (!n->has_str)
			return true;
		return in->principal &&
		       px_string_match(&n->str, in->principal, strlen(in->principal));
	case PX_RBAC_DIRECT_REMOTE_IP:
		return in->direct_remote && px_cidr_contains(&n->cidr, in->direct_remote);
	case PX_RBAC_REMOTE_IP: {
		const struct shunt_addr *a = in->remote ? in->remote : in->direct_remote;

		return a && px_cidr_contains(&n->cidr, a);
	}
	}
	return false;
}

static const char *first_match(const struct px_rbac_rules *r, const struct px_rbac_input *in)
{
	for (uint32_t i = 0; i < r->npolicies; i++) {
		const struct px_rbac_policy *p = &r->policies[i];

		if (any_match(p->permissions, p->npermissions, in) &&
		    any_match(p->principals, p->nprincipals, in))
			return p->name;
	}
	return NULL;
}

bool px_rbac_rules_allow(const struct px_rbac_rules *r, const struct px_rbac_input *in,
			 const char **policy)
{
	const char *hit = first_match(r, in);

	*policy = hit;
	switch (r->action) {
	case PX_RBAC_ALLOW:
		return hit != NULL;
	case PX_RBAC_DENY:
		return hit == NULL;
	case PX_RBAC_LOG:
		return true;
	}
	return false;
}

void px_rbac_eval(const struct px_rbac *f, const struct px_rbac_input *in,
		  struct px_rbac_decision *d)
{
	d->enforced.policy = NULL;
	d->enforced.allowed = !f->rules || px_rbac_rules_allow(f->rules, in, &d->enforced.policy);
	d->has_shadow = f->shadow != NULL;
	d->shadow.policy = NULL;
	d->shadow.allowed = !f->shadow || px_rbac_rules_allow(f->shadow, in, &d->shadow.policy);
}

unsigned px_rbac_check(const struct px_rbac *f, const struct px_rbac_input *in, const char **policy)
{
	struct px_rbac_decision d;
	unsigned bits = 0;

	px_rbac_eval(f, in, &d);
	*policy = d.enforced.policy;
	if (d.has_shadow)
		bits |= d.shadow.allowed ? PX_RBAC_SHADOW_ALLOWED : PX_RBAC_SHADOW_DENIED;
	if (f->rules)
		bits |= d.enforced.allowed ? PX_RBAC_ALLOWED : PX_RBAC_DENIED;
	return bits;
}

void px_rbac_details(char *buf, size_t len, const char *policy)
{
	snprintf(buf, len, "rbac_access_denied_matched_policy[%s]", policy ? policy : "none");
	http_details_token(buf);
}

/* ---- regexes ----------------------------------------------------------------------------------- */

static int nodes_prepare(struct arena *a, struct px_rbac_node *v, uint32_t n, const char **err)
{
	int rc = 0;

	for (uint32_t i = 0; i < n && !rc; i++) {
		struct px_rbac_node *x = &v[i];

		switch (x->kind) {
		case PX_RBAC_AND:
		case PX_RBAC_OR:
			rc = nodes_prepare(a, x->set.v, x->set.n, err);
			break;
		case PX_RBAC_NOT:
			rc = nodes_prepare(a, x->negated, 1, err);
			break;
		case PX_RBAC_HEADER:
			if (x->header.kind == PX_HDR_STRING)
				rc = px_string_matcher_prepare(a, &x->header.str, err);
			break;
		case PX_RBAC_URL_PATH:
		case PX_RBAC_SNI:
			rc = px_string_matcher_prepare(a, &x->str, err);
			break;
		case PX_RBAC_AUTHENTICATED:
			if (x->has_str)
				rc = px_string_matcher_prepare(a, &x->str, err);
			break;
		default:
			break;
		}
	}
	return rc;
}

static void nodes_release(struct px_rbac_node *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct px_rbac_node *x = &v[i];

		switch (x->kind) {
		case PX_RBAC_AND:
		case PX_RBAC_OR:
			nodes_release(x->set.v, x->set.n);
			break;
		case PX_RBAC_NOT:
			nodes_release(x->negated, 1);
			break;
		case PX_RBAC_HEADER:
			if (x->header.kind == PX_HDR_STRING)
				px_string_matcher_release(&x->header.str);
			break;
		case PX_RBAC_URL_PATH:
		case PX_RBAC_SNI:
			px_string_matcher_release(&x->str);
			break;
		case PX_RBAC_AUTHENTICATED:
			if (x->has_str)
				px_string_matcher_release(&x->str);
			break;
		default:
			break;
		}
	}
}

static int rules_prepare(struct arena *a, struct px_rbac_rules *r, const char **err)
{
	int rc = 0;

	for (uint32_t i = 0; r && i < r->npolicies && !rc; i++) {
		rc = nodes_prepare(a, r->policies[i].permissions, r->policies[i].npermissions, err);
		if (!rc)
			rc = nodes_prepare(a, r->policies[i].principals, r->policies[i].nprincipals,
					   err);
	}
	return rc;
}

static void rules_release(struct px_rbac_rules *r)
{
	for (uint32_t i = 0; r && i < r->npolicies; i++) {
		nodes_release(r->policies[i].permissions, r->policies[i].npermissions);
		nodes_release(r->policies[i].principals, r->policies[i].nprincipals);
	}
}

int px_rbac_prepare(struct arena *a, struct px_rbac *f, const char **err)
{
	int rc = rules_prepare(a, f->rules, err);

	if (!rc)
		rc = rules_prepare(a, f->shadow, err);
	if (rc)
		px_rbac_release(f);
	return rc;
}

void px_rbac_release(struct px_rbac *f)
{
	rules_release(f->rules);
	rules_release(f->shadow);
}
