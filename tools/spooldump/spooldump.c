/* spooldump: prints what a chainwatchd spool holds, one line per record,
 * without changing anything (no lock, no cursor), so it can inspect the
 * spool of a running or crashed server.
 *
 *   spooldump DATA_DIR
 *   batch <agent_id> <seq> <events> <offset>
 *   hello <agent_id> - - <offset>
 *   audit <cluster> - 1 <offset>
 * Exit status 1 if a segment has a corrupt or torn record (reported on
 * stderr with its position).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chainwatch.pb-c.h"
#include "storage/spool_seg.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: spooldump DATA_DIR\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/spool", argv[1]);
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 2;
    }
    uint64_t *bases = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        uint64_t base;
        if (cw_spool_seg_parse_name(e->d_name, &base) < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            bases = realloc(bases, cap * sizeof *bases);
        }
        bases[n++] = base;
    }
    closedir(d);
    qsort(bases, n, sizeof *bases, cmp_u64);
    int status = 0;
    cw_spool_seg_rd rd;
    cw_spool_seg_rd_init(&rd);
    for (size_t i = 0; i < n; i++) {
        char name[CW_SPOOL_SEG_NAME_LEN + 1], path[4200];
        cw_spool_seg_name(name, bases[i]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            perror(path);
            status = 1;
            continue;
        }
        cw_spool_seg_rd_set_fd(&rd, fd);
        uint64_t pos = 0;
        for (;;) {
            cw_spool_seg_rec rec;
            int rc = cw_spool_seg_next(&rd, pos, (uint64_t)st.st_size, &rec);
            if (rc == 0) break;
            if (rc < 0) {
                /* A torn tail is what a crash leaves; the server truncates it. */
                fprintf(stderr, "%s at %llu: %s\n", path, (unsigned long long)pos,
                        cw_spool_seg_strerror(rc));
                if (rc != CW_SPOOL_SEG_TORN) status = 1;
                break;
            }
            uint64_t off = bases[i] + pos;
            if (rec.kind == CW_REC_BATCH) {
                Chainwatch__V1__EventBatch *b =
                    chainwatch__v1__event_batch__unpack(NULL, rec.body_len, rec.body);
                printf("batch %.*s %llu %zu %llu\n", rec.key_len, rec.key,
                       (unsigned long long)rec.seq, b ? b->n_events : (size_t)0,
                       (unsigned long long)off);
                if (b) chainwatch__v1__event_batch__free_unpacked(b, NULL);
            } else if (rec.kind == CW_REC_HELLO) {
                printf("hello %.*s - - %llu\n", rec.key_len, rec.key, (unsigned long long)off);
            } else if (rec.kind == CW_REC_AUDIT) {
                printf("audit %.*s - 1 %llu\n", rec.key_len, rec.key, (unsigned long long)off);
            }
            pos += rec.size;
        }
        cw_spool_seg_rd_set_fd(&rd, -1);
        close(fd);
    }
    cw_spool_seg_rd_free(&rd);
    free(bases);
    return status;
}
