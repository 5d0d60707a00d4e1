/* Prints the example config exactly as `chainwatchd --print-example-config`
 * will, through the same cw_config_load path, so deploy/chainwatch.example.yaml
 * can be regenerated while server/main.c is still a placeholder:
 *   cmake --build BUILD --target update-example-config */
#include <stdio.h>

#include "common/config.h"

int main(void)
{
    char *argv[] = {"chainwatchd", "--print-example-config", NULL};
    cw_config c;
    char err[512];
    int rc = cw_config_load(&c, 2, argv, err, sizeof err);
    if (rc < 0) fprintf(stderr, "%s\n", err);
    return rc == 1 ? 0 : 1;
}
