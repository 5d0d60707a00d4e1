/* libFuzzer target: the YAML config loader on arbitrary bytes, then
 * validation of whatever it accepted. Must never crash, leak or read out of
 * bounds; errors are expected. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cw_config c;
    char err[512];
    cw_config_defaults(&c);
    if (cw_config_load_yaml_buffer(&c, "fuzz.yaml", (const char *)data, size, err, sizeof err) ==
        0) {
        /* Validation stats paths the input named; harmless, read-only. */
        cw_config_validate(&c, err, sizeof err);
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        __builtin_trap(); /* messages are always terminated */
    }
    return 0;
}
