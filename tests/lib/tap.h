/* Minimal TAP producer for shunt's C tests: plan, ok/is checks, diagnostics, done_testing. */
#ifndef SHUNT_TESTS_TAP_H
#define SHUNT_TESTS_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

/* Diagnostics follow failures, so they go to stderr with them. */
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fflush(stdout);
	fputs("# ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!cond) {
		tap_failed++;
		/* Failure diagnostics go to stderr, where prove shows them without -v. */
		fflush(stdout);
		fprintf(stderr, "#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                                     \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		if (!ok(g_ == w_, __VA_ARGS__))                                                    \
			tap_diag("  got %lld, want %lld", g_, w_);                                 \
	} while (0)

#define cmp_ge(got, want, ...)                                                                     \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		if (!ok(g_ >= w_, __VA_ARGS__))                                                    \
			tap_diag("  got %lld, want at least %lld", g_, w_);                        \
	} while (0)

#define is_str(got, want, ...)                                                                     \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                             \
			tap_diag("  got \"%s\", want \"%s\"", g_ ? g_ : "(null)",                  \
				 w_ ? w_ : "(null)");                                              \
	} while (0)

#define skip_all(why)                                                                              \
	do {                                                                                       \
		printf("1..0 # SKIP %s\n", why);                                                   \
		exit(0);                                                                           \
	} while (0)

static inline int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
