/* Growable, always NUL-terminated byte buffer for building text (JSON, admin replies). */
#ifndef SHUNT_LIB_STRBUF_H
#define SHUNT_LIB_STRBUF_H

#include <stddef.h>

/* Largest buffer a strbuf grows to; appends beyond it fail with -E2BIG. */
#define STRBUF_MAX ((size_t)1 << 30)

/* Owns buf (malloc'd). After a failed append the buffer keeps what it had and err stays set, so
 * a sequence of appends can be checked once at the end. */
struct strbuf {
	char *buf; /* NULL until the first append; strbuf_str() never returns NULL */
	size_t len;
	size_t cap;
	int err; /* 0, or the first -ENOMEM / -E2BIG (writers may set their own, e.g. -ELOOP) */
};

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

void strbuf_init(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Empties the buffer and clears err; keeps the memory. */
void strbuf_reset(struct strbuf *sb);
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addc(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops bytes past len (len <= sb->len). */
void strbuf_truncate(struct strbuf *sb, size_t len);
const char *strbuf_str(const struct strbuf *sb);
/* Hands the buffer to the caller (free() it); the strbuf is left empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
