/* core/log.h - leveled logging with a module tag.
 *
 * log_err/log_warn/log_info/log_debug(tag, fmt, ...) write one line to stderr
 * (time, level, tag, message). Any thread may call them; a line is written
 * with a single write(2), so lines never interleave. log_debug costs one
 * branch when the level is above debug. Never pass secrets or signatures.
 */
#ifndef CAIRN_CORE_LOG_H
#define CAIRN_CORE_LOG_H

enum log_level { LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_err(tag, ...) log_msg(LOG_ERR, tag, __VA_ARGS__)
#define log_warn(tag, ...) log_msg(LOG_WARN, tag, __VA_ARGS__)
#define log_info(tag, ...) log_msg(LOG_INFO, tag, __VA_ARGS__)
#define log_debug(tag, ...)                                                                        \
	do {                                                                                       \
		if (log_threshold >= LOG_DEBUG)                                                    \
			log_msg(LOG_DEBUG, tag, __VA_ARGS__);                                      \
	} while (0)

#endif
