/* jsonl: an append-only JSON Lines file writer (events-out, alerts-out,
 * incidents-out).
 *
 * Lines are buffered in memory and written with write(2) by
 * cw_jsonl_flush() (and automatically once the buffer passes 256 KiB);
 * cw_jsonl_sync() also makes them durable. The file only ever holds whole
 * lines: a write that fails half-way (disk full) is cut back to the last
 * complete line, and a torn last line left by a crash is removed at open.
 * Write errors are logged (once per run of failures) and counted in
 * cw_m.output_write_errors_total / output_lines_dropped_total; the lines
 * concerned are dropped so that a full disk never stops the pipeline. One
 * writer per file: the process must be the file's only writer.
 *
 * Not thread-safe: owned by one thread (the pipeline thread).
 */
#ifndef CW_JSONL_H
#define CW_JSONL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cw_jsonl cw_jsonl;

/* Opens (creating with mode 0640) `path` for appending. Returns 0, or -1
 * with a message in err. */
int cw_jsonl_open(cw_jsonl **out, const char *path, char *err, size_t errlen);

/* Buffers one line: `len` bytes of JSON, without the newline (added here).
 * A line containing '\n' is refused (-1), since it would become two lines.
 * Returns 0, or -1 if the line was refused or an automatic flush failed. */
int cw_jsonl_write(cw_jsonl *j, const void *line, size_t len);

/* Writes buffered lines to the file (no fsync). Returns 0 or -1. */
int cw_jsonl_flush(cw_jsonl *j);

/* Flushes, then fdatasync(2)s. Returns 0 or -1. */
int cw_jsonl_sync(cw_jsonl *j);

/* Flushes, fsyncs and closes; frees j. Returns 0, or -1 if any of that failed. */
int cw_jsonl_close(cw_jsonl *j);

/* Lines written to the file since open. */
uint64_t cw_jsonl_lines(const cw_jsonl *j);

const char *cw_jsonl_path(const cw_jsonl *j);

#endif
