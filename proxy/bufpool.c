/* Per-worker buffer free list, bounded so that a burst does not pin memory forever. */
#include "proxy/bufpool.h"

#include <stdlib.h>

struct buf *bufpool_get(struct bufpool *bp)
{
	struct buf *b = bp->free;

	if (b) {
		bp->free = b->next;
		bp->nfree--;
	} else {
		b = malloc(sizeof(*b));
		if (!b)
			return NULL;
	}
	bp->in_use++;
	return b;
}

void bufpool_put(struct bufpool *bp, struct buf *b)
{
	bp->in_use--;
	if (bp->nfree >= BUF_POOL_KEEP) {
		free(b);
		return;
	}
	b->next = bp->free;
	bp->free = b;
	bp->nfree++;
}

void bufpool_destroy(struct bufpool *bp)
{
	while (bp->free) {
		struct buf *b = bp->free;

		bp->free = b->next;
		free(b);
	}
	bp->nfree = 0;
}
