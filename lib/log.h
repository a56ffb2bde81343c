/* Leveled logging for shuntd and shuntctl: one line per message, to stderr. */
#ifndef SHUNT_LIB_LOG_H
#define SHUNT_LIB_LOG_H

#include <stdarg.h>

enum log_level {
	L_ERROR,
	L_WARN,
	L_INFO,
	L_DEBUG
};

/* Current threshold; messages above it are dropped. Written by the agent (log-level command),
 * read by every thread: a plain int is enough, a stale read only delays the change. */
extern volatile int log_threshold;

void log_init(const char *prog);
/* "error", "warn", "info" or "debug" -> level; -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...)  log_msg(L_ERROR, __VA_ARGS__)
#define pr_warn(...) log_msg(L_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(L_INFO, __VA_ARGS__)
#define pr_debug(...)                                                                              \
	do {                                                                                       \
		if (log_threshold >= L_DEBUG)                                                      \
			log_msg(L_DEBUG, __VA_ARGS__);                                             \
	} while (0)

#endif
