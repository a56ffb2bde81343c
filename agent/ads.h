/* The Aggregated Discovery Service client: one ADS stream (state-of-the-world or delta) to the
 * control plane named by the bootstrap, driven by the caller's event loop. */
#ifndef SHUNT_AGENT_ADS_H
#define SHUNT_AGENT_ADS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/xdsres.h"

#define ADS_BACKOFF_INITIAL_MS 500
#define ADS_BACKOFF_MAX_MS     30000
#define ADS_HEALTHY_STREAM_MS  30000 /* a stream that lived this long resets the backoff, as */
				     /* does any response that decodes */
#define ADS_INITIAL_FETCH_MS 15000   /* a subscribed type that stays silent stops blocking ready */
#define ADS_MAX_NESTING	     64	     /* protobuf nesting accepted before decoding a response */
#define ADS_USER_AGENT	     "shunt"

struct ads;

/* The caller's side of the client. ctx is given back to every callback. */
struct ads_callbacks {
	/* A candidate config: the last accepted one plus one DiscoveryResponse (or, for the first
	 * call, everything of the initial fetch), sealed. Return 0 to accept it: ownership of
	 * candidate passes to the callee, who frees it with xds_config_free when done (its
	 * resources are shared by reference count with the client's copy, so keeping it costs no
	 * copy and freeing it on another thread is safe). Return non-zero and write a reason into
	 * err to reject it: the client NACKs the response with that reason, keeps its previous
	 * config and frees candidate. Called on the loop's thread only. */
	int (*apply)(void *ctx, struct xds_config *candidate, char *err, size_t errlen);
	/* Optional: the initial fetch of every subscribed type completed and was applied. */
	void (*ready)(void *ctx);
	/* Optional: an update was NACKed. cfg is the client's config with the rejection recorded
	 * (xds_config_reject), valid during the call; type is -1 when the response's type is not
	 * one of xds_types. */
	void (*rejected)(void *ctx, int type, const char *reason, const struct xds_config *cfg);
	/* Optional: a log line ("ads: ..."); stderr if NULL. */
	void (*log)(void *ctx, const char *line);
};

struct ads_opts {
	const char *host; /* overrides the ADS cluster's first endpoint (tests) */
	uint16_t port;
	int delta;	      /* -1: from ads_config.api_type; 0: SotW; 1: delta */
	uint32_t max_message; /* 0: GRPC_MAX_MESSAGE_DEF */
	uint32_t backoff_initial_ms, backoff_max_ms, initial_fetch_ms; /* 0: the defaults above */
};

struct ads_stats {
	int connected;
	int ready;
	uint64_t connects, disconnects; /* streams opened, and lost after opening */
	uint64_t connect_failures;	/* attempts that never opened a stream */
	uint64_t accepted[XDS_NTYPES], rejected[XDS_NTYPES];
	uint64_t rejected_unknown_type;		 /* responses for no type in xds_types */
	struct timespec last_update[XDS_NTYPES]; /* CLOCK_REALTIME of the last accepted update */
	size_t resources[XDS_NTYPES];		 /* in the client's current config */
	uint32_t backoff_ms;			 /* the wait before the next connect attempt */
};

/* Starts the client from a loaded bootstrap (bootstrap_load); the client keeps a share of its
 * resources, so the caller may free boot afterwards. The first connect happens on the first
 * ads_tick. 0, -EINVAL (no ADS in the bootstrap, or its cluster has no address; err says what),
 * or -ENOMEM. */
int ads_start(struct ads **out, struct xds_config *boot, const struct ads_opts *o,
	      const struct ads_callbacks *cb, void *ctx, char *err, size_t errlen);
/* A stable fd for the caller's epoll (an inner epoll set): wait for EPOLLIN on it. */
int ads_fd(const struct ads *a);
/* Drives the connection after epoll reported the fd readable. */
void ads_io(struct ads *a);
/* Timers: connect, backoff, keepalive, initial fetch timeout. Returns ms until the next call. */
int ads_tick(struct ads *a, uint64_t now_ms);
/* The client's current (last accepted) config; valid until the next ads_io/ads_tick. */
const struct xds_config *ads_config(const struct ads *a);
const struct ads_stats *ads_stats(const struct ads *a);
void ads_free(struct ads *a);

/* The names of type t (a route, endpoint or secret type) that the resources of cfg refer to,
 * sorted and unique; *names is the caller's (ads_names_free). 0 or -ENOMEM. */
int ads_wanted_names(const struct xds_config *cfg, enum xds_type t, char ***names, size_t *n);
void ads_names_free(char **names, size_t n);

/* Whether a serialized protobuf message nests deeper than max_depth, read as wire format
 * (every length-delimited field that parses as a message counts as one). protobuf-c's unpack
 * recurses without a limit, so responses are checked with this first. */
int ads_pb_too_deep(const uint8_t *buf, size_t len, int max_depth);

#endif
