/*
 * Debian 12's whip-client (simple-whip-client 0.0~git20230131) links libsoup 2, while
 * GStreamer's nice plugin pulls in libsoup 3 (libnice -> gupnp-igd -> gupnp -> libsoup 3).
 * libsoup 3 aborts at load when it finds libsoup 2's `soup_uri_new` in the process
 * ("libsoup2 symbols detected"), so the packaged client cannot start at all. Preloading
 * this hides that one lookup; the client then works (it only uses libsoup 2 itself; the
 * UPnP side of libnice finds no router on loopback). Upstream whip-client builds against
 * libsoup 3 and needs none of this.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

int g_module_symbol(void *module, const char *name, void **symbol)
{
    static int (*real)(void *, const char *, void **);
    if (name && strcmp(name, "soup_uri_new") == 0) {
        if (symbol)
            *symbol = 0;
        return 0;
    }
    if (!real)
        real = (int (*)(void *, const char *, void **))dlsym(RTLD_NEXT, "g_module_symbol");
    return real ? real(module, name, symbol) : 0;
}
