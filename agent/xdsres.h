/* xDS resources: the types shuntd consumes, checks beyond the schema, the set of active ones. */
#ifndef SHUNT_AGENT_XDSRES_H
#define SHUNT_AGENT_XDSRES_H

#include <stddef.h>
#include <time.h>
#include <protobuf-c/protobuf-c.h>

#include "agent/jtree.h"
#include "envoy/config/listener/v3/listener.pb-c.h"

/* Most resources of one type in one config; more is an error naming the limit. Listeners go
 * as far as clusters: Istio sends one per TCP service VIP:port. */
#define XDS_MAX_LISTENERS 16384
#define XDS_MAX_ROUTES	  4096
#define XDS_MAX_CLUSTERS  16384
#define XDS_MAX_ENDPOINTS 16384
#define XDS_MAX_SECRETS	  4096
#define XDS_PORT_MIN	  1
#define XDS_PORT_MAX	  65535

enum xds_type {
	XDS_LISTENER,
	XDS_ROUTE,
	XDS_CLUSTER,
	XDS_ENDPOINT,
	XDS_SECRET,
	XDS_NTYPES,
};

struct xds_type_info {
	const char *type_url; /* "type.googleapis.com/envoy.config.listener.v3.Listener" */
	const char *noun;     /* "listener": what errors call one */
	const char *plural;   /* "listeners": config_dump --type, limits */
	const ProtobufCMessageDescriptor *desc;
	size_t max;
};

extern const struct xds_type_info xds_types[XDS_NTYPES];

/* The type whose URL this is (any prefix before the last '/'), or -1. */
int xds_type_from_url(const char *type_url);
/* The resource's name: Listener.name, ClusterLoadAssignment.cluster_name, ... ("" if unset). */
const char *xds_resource_name(enum xds_type t, const ProtobufCMessage *msg);
/* Names an unnamed static listener (index: its place in static_resources) after its address,
 * "static_0.0.0.0_15090", as Envoy would give it a UUID. -ENOMEM, else 0. */
int xds_listener_name_static(Envoy__Config__Listener__V3__Listener *l, size_t index);

/* A name one resource depends on: a cluster, a route configuration, an endpoint set. */
struct xds_ref {
	enum xds_type type;
	char *name;
	char *where; /* field path inside the referring resource */
	/* An SdsSecretConfig without sds_config: Envoy takes only a static secret of that name;
	 * it is never subscribed, however the bootstrap's dynamic sources are set. */
	int static_only;
};

/* One accepted resource; owned by its xds_config. */
struct xds_resource {
	char *name;
	ProtobufCMessage *msg; /* checked and normalized (see xds_resource_check) */
	char *version;	       /* version_info of the update that brought it; "" when static */
	struct timespec updated;
	int is_static;
	struct xds_ref *refs;
	size_t n_refs;
	/* NULL: name, msg, version and refs belong to this config alone. Otherwise they are shared
	 * between configs (see xds_config_add_shared) and this counts the holders; the last
	 * xds_config_free frees them. */
	unsigned *shared;
};

/* A rejected update of one resource, shown by config_dump as the resource's error_state. */
struct xds_rejection {
	char *name;
	char *version;
	char *details;
	ProtobufCMessage *failed; /* google.protobuf.Any of what was offered, or NULL */
	struct timespec when;
};

/* The active resources. Built by one thread (bootstrap loader, ADS client), then sealed: after
 * xds_config_seal succeeds the resources are sorted by name, cross-checked and read-only, and
 * may be shared with readers. Everything reachable from it is owned by it. */
struct xds_config {
	ProtobufCMessage *bootstrap; /* Envoy__Config__Bootstrap__V3__Bootstrap, or NULL */
	unsigned *bootstrap_shared;  /* as xds_resource.shared, for bootstrap */
	struct timespec bootstrap_loaded;
	int dynamic[XDS_NTYPES]; /* may arrive over ADS: references to unknown names are fine */
	char *version[XDS_NTYPES];
	struct xds_resource *res[XDS_NTYPES];
	size_t n[XDS_NTYPES];
	size_t cap[XDS_NTYPES]; /* entries allocated in res[] (grown geometrically) */
	struct xds_rejection *rejected[XDS_NTYPES];
	size_t n_rejected[XDS_NTYPES];
	unsigned warnings; /* optional filters dropped, and the like */
	int sealed;
};

struct xds_config *xds_config_new(void);
void xds_config_free(struct xds_config *cfg);

/* Checks one resource on its own and normalizes it in place: listener ports in 1..65535,
 * names present, filters known (an unknown HTTP filter marked is_optional is dropped with a
 * warning and counted in *warnings; any other unknown filter is an error), no duplicate
 * virtual-host domains; the names it refers to are returned in refs (caller frees with
 * xds_refs_free). who starts every error ("listener \"web\""). 0 or -EINVAL/-ENOMEM. */
int xds_resource_check(enum xds_type t, ProtobufCMessage *msg, const char *who, unsigned *warnings,
		       struct xds_ref **refs, size_t *n_refs, struct jtree_err *err);
void xds_refs_free(struct xds_ref *refs, size_t n);

/* Decodes a resource as it arrives in a DiscoveryResponse (or a static section packed the same
 * way): an Any of one of the xds_types. *msg is the caller's. */
int xds_resource_from_any(const ProtobufCMessage *any, enum xds_type *t, ProtobufCMessage **msg,
			  struct jtree_err *err);

/* Checks msg (as xds_resource_check, who = "<noun> \"<name>\"" unless given) and adds it to an
 * unsealed config, taking ownership of msg on success. */
int xds_config_add(struct xds_config *cfg, enum xds_type t, ProtobufCMessage *msg,
		   const char *version, int is_static, const struct timespec *when, const char *who,
		   struct jtree_err *err);
/* Sorts, then rejects duplicate names, counts over the limits and references to names that
 * neither exist nor may arrive dynamically. 0 or -EINVAL (err names the resource). */
int xds_config_seal(struct xds_config *cfg, struct jtree_err *err);

/* Records that an update of resource name was rejected (copies everything given). */
int xds_config_reject(struct xds_config *cfg, enum xds_type t, const char *name,
		      const char *version, const char *details, const ProtobufCMessage *failed_any,
		      const struct timespec *when);

/* Adds resource r of another config to an unsealed one without copying it: both then hold it
 * (the count is atomic, so configs sharing resources may be freed on different threads). The
 * first share of a resource sets r->shared, so it must not race with another share of the same
 * resource. 0 or -ENOMEM/-EINVAL. */
int xds_config_add_shared(struct xds_config *cfg, enum xds_type t, struct xds_resource *r);
/* Makes an empty unsealed dst hold src's bootstrap (shared as above) and dynamic flags. */
int xds_config_share_bootstrap(struct xds_config *dst, struct xds_config *src);

/* A resource of a sealed config by name, or NULL. */
const struct xds_resource *xds_config_find(const struct xds_config *cfg, enum xds_type t,
					   const char *name);

#endif
