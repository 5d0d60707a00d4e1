/* libFuzzer: arbitrary bytes as an audit webhook body through cw_audit_parse
 * (with the JSON repair pass and the parse memory budget), checking what the
 * intake relies on for every event it returns. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/audit.h"
#include "server/json_repair.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cw_audit_batch b;
    char err[256];
    const char *body = (const char *)data;
    int rc = cw_audit_parse(body, size, &b, err, sizeof(err));
    if (rc == 0) {
        for (size_t i = 0; i < b.n_events; i++) {
            const cw_audit_event *ev = &b.events[i];
            /* The stored record must be one JSON object a reader can parse. */
            json_t *j = json_loadb(ev->json, ev->json_len, JSON_ALLOW_NUL, NULL);
            if (!json_is_object(j) || ev->json[ev->json_len] != '\0')
                abort();
            json_decref(j);
            if (ev->audit_id_len == 0 || ev->audit_id_len > CW_AUDIT_ID_MAX ||
                strlen(ev->audit_id) != ev->audit_id_len || ev->stage_len == 0 ||
                ev->stage_len > CW_AUDIT_STAGE_MAX || strlen(ev->stage) != ev->stage_len)
                abort();
        }
    } else {
        if (b.events || b.n_events || rc >= 0)
            abort();
        for (const char *p = err; *p; p++) /* safe to log and to echo in JSON */
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                abort();
    }
    cw_audit_batch_free(&b);
    size_t n = 0;
    char *fixed = cw_json_repair(body, size, &n);
    if (fixed && n > 3 * size)
        abort();
    free(fixed);
    return 0;
}
