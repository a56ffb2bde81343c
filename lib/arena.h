/* A bump allocator: many small allocations that live and die together (one config snapshot). */
#ifndef SHUNT_LIB_ARENA_H
#define SHUNT_LIB_ARENA_H

#include <stddef.h>

#define ARENA_CHUNK 65536

struct arena_chunk;

/* Zero-initialised is empty. Owns every chunk; arena_free releases them all at once. */
struct arena {
	struct arena_chunk *head;
	size_t used_total;
};

/* Zeroed memory aligned for any type, or NULL. */
void *arena_alloc(struct arena *a, size_t size);
/* Copies of a string (NULL stays NULL) and of a byte range as a NUL-terminated string. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void arena_free(struct arena *a);

#define arena_new(a, type, n) ((type *)arena_alloc((a), sizeof(type) * (size_t)(n)))

#endif
