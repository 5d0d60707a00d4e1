#include "correlator/tactics.h"

#include <string.h>

/* Keys and phases copied from k8s-threat-matrix.yaml (tactics[].key and
 * tactics[].phase); the phase model is explained in that file's header. */
static const struct {
    const char *key, *phase;
} tactics[] = {
    {"initial-access", "pre"},   {"execution", "mid"},      {"persistence", "mid"},
    {"privilege-escalation", "mid"}, {"defense-evasion", "mid"}, {"credential-access", "mid"},
    {"discovery", "post"},       {"lateral-movement", "post"}, {"collection", "post"},
    {"impact", "post"},
};

const char *cw_tactic_phase(const char *key)
{
    if (!key) return NULL;
    for (size_t i = 0; i < sizeof tactics / sizeof tactics[0]; i++)
        if (strcmp(tactics[i].key, key) == 0) return tactics[i].phase;
    return NULL;
}

int cw_tactic_valid_phase(const char *s)
{
    return s && (strcmp(s, "pre") == 0 || strcmp(s, "mid") == 0 || strcmp(s, "post") == 0);
}

int cw_tactic_valid_technique(const char *s)
{
    if (!s || strlen(s) != 9 || strncmp(s, "MS-TA9", 6) != 0) return 0;
    for (int i = 6; i < 9; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}
