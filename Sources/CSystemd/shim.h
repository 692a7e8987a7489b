#ifndef REEL_CSYSTEMD_SHIM_H
#define REEL_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>
// sd_journal_print / sd_journal_send are variadic; Reel uses sd_journal_sendv (iovecs) instead.
// Called only from Sources/ReelSystemd/LibSystemd.swift.
static inline int csd_journal_print(int priority, const char *message) {
    return sd_journal_print(priority, "%s", message);
}
#endif
