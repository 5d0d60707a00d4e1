/* fields: rule field names (rules/FIELDS.md) -> accessors on a cw_event.
 *
 * A rule names a field as in --events-out JSON ("exe", "labels.app",
 * "dst_port") plus DERIVED fields ("cmdline", "exe_name", "exec_command").
 * At load, cw_field_lookup() resolves a name for one event type into a
 * cw_fref (an index and, for labels.<key>, the key). Per event,
 * cw_field_get() fills a cw_fvals with the field's values: every value as
 * text (numbers in decimal, bools as "true"/"false") so one string matcher
 * serves every type, plus the integer for numeric fields. A scalar field
 * gives one value, a list field any number; an absent field gives
 * present == 0.
 *
 * Ownership: cw_fvals owns a scratch buffer for derived text (joined argv,
 * URL-decoded exec commands, rendered numbers); the values it returns point
 * into it or into the event and are valid until the next cw_field_get() on
 * the same cw_fvals or until the event goes away.
 *
 * Threads: lookups are pure; a cw_fvals belongs to one thread (the
 * pipeline thread's detector).
 */
#ifndef CW_FIELDS_H
#define CW_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "correlator/event.h"

enum cw_fkind { CW_FK_STR, CW_FK_NUM, CW_FK_BOOL, CW_FK_STR_LIST, CW_FK_NUM_LIST };

/* A resolved field: index into the field table, plus the label key for
 * labels.<key> (borrowed from whoever resolved it; NULL otherwise). */
typedef struct cw_fref {
    int id;
    const char *label;
} cw_fref;

typedef struct cw_fval {
    const char *s; /* text form, not necessarily NUL-terminated */
    size_t len;
    int64_t num;   /* valid when has_num */
    int has_num;
    size_t off;    /* internal: offset into scratch until resolved */
} cw_fval;

typedef struct cw_fvals {
    int present;
    size_t n;
    cw_fval *v;
    size_t cap;
    char *scratch;
    size_t slen, scap;
    int oom; /* an allocation failed: the values are incomplete */
} cw_fvals;

/* Bound on derived text per field (a joined argv): longer is truncated. */
#define CW_FIELD_SCRATCH_MAX (1024u * 1024)

/* Resolves `name` for events of type t. Returns 0, or -1 if no such field
 * exists for that type. out->label points into name for labels.<key>. */
int cw_field_lookup(const char *name, enum cw_event_type t, cw_fref *out);

enum cw_fkind cw_field_kind(const cw_fref *f);
const char *cw_field_name(const cw_fref *f);
int cw_field_is_numeric(const cw_fref *f);

/* 1 if the same field (same id and label key). */
int cw_field_same(const cw_fref *a, const cw_fref *b);

void cw_fvals_init(cw_fvals *fv);
void cw_fvals_free(cw_fvals *fv);

/* Fills fv with field f of ev (which must be of a type f was resolved for;
 * otherwise the field is absent). */
void cw_field_get(const cw_fref *f, const cw_event *ev, cw_fvals *fv);

/* The first value of f as text into buf (bounded, NUL-terminated), "" if
 * absent. For group keys and summaries. */
void cw_field_first(const cw_fref *f, const cw_event *ev, cw_fvals *fv, char *buf, size_t n);

#endif
