/* libFuzzer target: rule YAML text -> parse, compile, and (if it loads)
 * one event of each kind through the detector. Must never crash, leak or
 * hang; every failure must come with a "file:line: ..." message.
 * Run longer: build with -DCW_FUZZ=ON (clang), then
 *   ./fuzz_rules -max_len=8192 -dict=../tests/fuzz/rules.dict corpus/ */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "correlator/detect.h"
#include "correlator/event.h"

static void ignore(const cw_alert *a, void *ud)
{
    (void)a;
    (void)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    cw_ruleset *rs = NULL;
    if (cw_ruleset_load_text(&rs, (const char *)data, size, "f.yml", err, sizeof err) < 0) {
        if (strncmp(err, "f.yml:", 6) != 0) abort(); /* errors always name the file */
        return 0;
    }
    cw_detector *d;
    if (cw_detector_create(&d, rs) < 0) return 0;
    Chainwatch__V1__Event pb = CHAINWATCH__V1__EVENT__INIT;
    Chainwatch__V1__ProcessExec ex = CHAINWATCH__V1__PROCESS_EXEC__INIT;
    char *argv[] = {"bash", "-c", "id"};
    ex.exe = "/bin/bash", ex.argv = argv, ex.n_argv = 3;
    pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_PROCESS_EXEC, pb.process_exec = &ex;
    cw_event ev;
    cw_event_from_agent(&ev, "a", 1, 0, &pb, 1);
    cw_detector_event(d, &ev, ignore, NULL);
    Chainwatch__V1__Login lg = CHAINWATCH__V1__LOGIN__INIT;
    lg.user = "root", lg.src_ip = "10.0.0.1", lg.service = "sshd", lg.has_success = 1;
    pb.payload_case = CHAINWATCH__V1__EVENT__PAYLOAD_LOGIN, pb.login = &lg;
    cw_event_from_agent(&ev, "a", 1, 1, &pb, 2);
    cw_detector_event(d, &ev, ignore, NULL);
    cw_detector_free(d);
    return 0;
}
