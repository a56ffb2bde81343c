/* Fixed-size I/O buffers from a per-worker free list: no malloc per read on the hot path. */
#ifndef SHUNT_PROXY_BUFPOOL_H
#define SHUNT_PROXY_BUFPOOL_H

#include <stddef.h>

#define BUF_SIZE 16384 /* one copy chunk; a connection holds at most one per direction */
/* Free buffers a worker keeps for reuse before returning memory. Connections hold buffers
 * only while bytes are in them, so the number in use follows the exchanges in flight, not the
 * connections open, and what comes back in one loop iteration is about what the next takes
 * again: 64 covers a worker saturated by dozens of keep-alive clients (a request buffer each,
 * response buffers briefly) without malloc on the hot path, and pins 1 MB after a burst
 * rather than 4. */
#define BUF_POOL_KEEP 64

struct buf {
	struct buf *next; /* free-list link while pooled */
	char data[BUF_SIZE];
};

/* Owned by one worker thread; not thread-safe by design. */
struct bufpool {
	struct buf *free;
	size_t nfree;
	size_t in_use;
};

struct buf *bufpool_get(struct bufpool *bp);
void bufpool_put(struct bufpool *bp, struct buf *b);
void bufpool_destroy(struct bufpool *bp);

#endif
