/* tactics: the tactic keys of the Microsoft Threat Matrix for Kubernetes
 * (as keyed in ../shared/reference/k8s-threat-matrix.yaml) and the attack
 * phase each implies. Embedded so the server never reads reference files at
 * run time. Immutable; any thread.
 */
#ifndef CW_TACTICS_H
#define CW_TACTICS_H

/* The phase ("pre" | "mid" | "post") of tactic `key`, or NULL if the key is
 * not a tactic of the matrix. */
const char *cw_tactic_phase(const char *key);

/* 1 if s is "pre", "mid" or "post". */
int cw_tactic_valid_phase(const char *s);

/* 1 if s looks like a Microsoft technique id: MS-TA9 followed by 3 digits. */
int cw_tactic_valid_technique(const char *s);

#endif
