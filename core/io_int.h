/* core/io_int.h - private glue between core/io.c and core/io_powerloss.c.
 *
 * Not for use outside core/io*.c. Every function here is a no-op returning 0
 * when power-loss mode is off, and is thread-safe (one mutex guards the log).
 */
#ifndef CAIRN_CORE_IO_INT_H
#define CAIRN_CORE_IO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Remembers fd -> absolute path; logs a "created" record when created. */
int io_pl_note_open(int fd, const char *path, bool created);
void io_pl_note_close(int fd);
/* Appends the undo record of a write about to be issued on fd. */
int io_pl_before_write(int fd, uint64_t off, size_t len);
/* Sequence number of the newest record logged so far: a sync submitted now
 * covers every record up to it. */
uint64_t io_pl_seq_now(void);
/* A completed fdatasync of fd covering records <= upto. */
int io_pl_synced(int fd, uint64_t upto);
/* A completed fsync of directory dir covering creations <= upto. */
int io_pl_dir_synced(const char *dir, uint64_t upto);

#endif
