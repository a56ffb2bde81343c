/* shuntd --config: an Envoy v3 bootstrap (YAML or JSON) decoded, checked and indexed. */
#ifndef SHUNT_AGENT_BOOTSTRAP_H
#define SHUNT_AGENT_BOOTSTRAP_H

#include <stddef.h>

#include "agent/jtree.h"
#include "agent/xdsres.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"

/* Reads, decodes and checks a bootstrap file; YAML or JSON is told by content. On success *out
 * is a sealed config the caller frees with xds_config_free: cfg->bootstrap holds the bootstrap as
 * given, cfg->res the static listeners, clusters (and their load assignments as given inline)
 * and secrets, each checked as an ADS update would be, and cfg->dynamic says what ADS may add.
 * On failure nothing is allocated and err->msg reads "FILE:LINE:COLUMN: problem" or
 * "FILE: problem"; a caller holding an older config keeps it. Returns 0, -EINVAL, -ENOMEM or
 * the -errno of reading the file. */
int bootstrap_load(const char *path, struct xds_config **out, struct jtree_err *err);

/* The same from text in memory; errors carry no file name. */
int bootstrap_parse(const char *text, size_t len, struct xds_config **out, struct jtree_err *err);

/* The bootstrap of a config loaded by the functions above. */
static inline const Envoy__Config__Bootstrap__V3__Bootstrap *
bootstrap_of(const struct xds_config *cfg)
{
	return (const Envoy__Config__Bootstrap__V3__Bootstrap *)cfg->bootstrap;
}

/* Envoy's --service-node, --service-cluster and --service-zone: each non-NULL value replaces
 * node.id, node.cluster or node.locality.zone of cfg's bootstrap (creating the node and its
 * locality when absent), before ADS starts, so the control plane and the config dump see them.
 * Values are printable ASCII of at most BOOTSTRAP_NODE_FIELD_MAX bytes. Returns 0, -EINVAL
 * (err says which flag and why; cfg unchanged) or -ENOMEM. */
#define BOOTSTRAP_NODE_FIELD_MAX 1024
int bootstrap_node_value_check(const char *flag, const char *v, char *err, size_t errlen);
int bootstrap_set_node(struct xds_config *cfg, const char *id, const char *cluster,
		       const char *zone, char *err, size_t errlen);

/* The static cluster ADS connects through, or NULL when no ADS is configured. */
const char *bootstrap_ads_cluster(const struct xds_config *cfg);

#endif
