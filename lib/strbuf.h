/* A growable byte buffer for building text (admin responses, JSON, access-log lines). */
#ifndef SHUNT_LIB_STRBUF_H
#define SHUNT_LIB_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Owns buf (malloc'd); zero-initialised is a valid empty buffer. On allocation failure the
 * buffer stops growing and sets oom, so callers check once at the end rather than per call. */
struct strbuf {
	char *buf;
	size_t len, cap;
	bool oom;
};

void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);
void sb_append(struct strbuf *sb, const void *data, size_t len);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminated view of the contents (never NULL). */
const char *sb_str(struct strbuf *sb);

#endif
