/* A gRPC client for one bidirectional stream over HTTP/2 (nghttp2), driven by the caller's
 * event loop. This is what the ADS client speaks to istiod or any xDS server. */
#ifndef SHUNT_AGENT_GRPC_H
#define SHUNT_AGENT_GRPC_H

#include <stddef.h>
#include <stdint.h>

#define GRPC_MAX_MESSAGE_DEF	(64u << 20) /* xDS pushes of 10k clusters exceed gRPC's 4 MiB */
#define GRPC_KEEPALIVE_MS_DEF	30000
#define GRPC_PING_TIMEOUT_MS	10000
#define GRPC_CONNECT_TIMEOUT_MS 10000

/* gRPC status codes used here. */
#define GRPC_STATUS_OK		       0
#define GRPC_STATUS_UNAVAILABLE	       14
#define GRPC_STATUS_INTERNAL	       13
#define GRPC_STATUS_RESOURCE_EXHAUSTED 8

struct grpc_client;

struct grpc_callbacks {
	/* The stream is open (HTTP/2 connected and the request headers sent). */
	void (*on_open)(void *ctx);
	/* One message; msg is valid during the call. Return non-zero to abort the stream. */
	int (*on_message)(void *ctx, const uint8_t *msg, size_t len);
	/* The stream ended: grpc-status from the trailers, or UNAVAILABLE/INTERNAL for transport
	 * failures, with a message. The client is closed after this; free it. */
	void (*on_close)(void *ctx, int status, const char *message);
};

struct grpc_client_opts {
	const char *host; /* IP literal or name (resolved when connecting) */
	uint16_t port;
	const char *authority;	  /* :authority; host:port if NULL */
	const char *path;	  /* "/package.Service/Method" */
	uint32_t max_message;	  /* 0: GRPC_MAX_MESSAGE_DEF */
	uint32_t keepalive_ms;	  /* 0: GRPC_KEEPALIVE_MS_DEF */
	uint32_t ping_timeout_ms; /* 0: GRPC_PING_TIMEOUT_MS */
	/* TLS (1.2/1.3, ALPN "h2" required) when set: an SSL_CTX holding the trusted CAs and any
	 * client certificate (grpc_tls_ctx_new); the caller keeps it alive past the client. */
	struct ssl_ctx_st *tls;
	const char *sni; /* the name sent and verified; host if NULL */
};

struct grpc_tls_opts {
	const char *ca_file, *ca_pem;	  /* one of them: trusted CAs */
	const char *cert_file, *cert_pem; /* optional client certificate ... */
	const char *key_file, *key_pem;	  /* ... and its key */
};

/* An SSL_CTX for grpc_client_opts.tls; NULL with a one-line reason in err. */
struct ssl_ctx_st *grpc_tls_ctx_new(const struct grpc_tls_opts *t, char *err, size_t errlen);
void grpc_tls_ctx_free(struct ssl_ctx_st *ctx);

/* Starts a non-blocking connect. 0 or -errno (bad options, resolution or socket failure). */
int grpc_client_start(struct grpc_client **out, const struct grpc_client_opts *o,
		      const struct grpc_callbacks *cb, void *ctx);
int grpc_client_fd(const struct grpc_client *c);
/* EPOLLIN/EPOLLOUT the client wants now. */
uint32_t grpc_client_want(const struct grpc_client *c);
/* Drives I/O after epoll reported events on the fd. */
void grpc_client_io(struct grpc_client *c, uint32_t events);
/* Queues one message. 0 or -errno (-EPIPE once the stream is closing). */
int grpc_client_send(struct grpc_client *c, const uint8_t *msg, size_t len);
/* Keepalive and connect timeout; returns the ms until it wants to be called again. */
int grpc_client_tick(struct grpc_client *c, uint64_t now_ms);
/* Half-closes our side (END_STREAM); the server may still answer. */
void grpc_client_finish(struct grpc_client *c);
void grpc_client_free(struct grpc_client *c);

#endif
