/* Compatibility shim that lets the prebuilt jazzer.js libFuzzer addon
 * (@jazzer.js/fuzzer 4.0.0, built against glibc 2.38 and GCC 13's libstdc++)
 * load on Debian 12 (glibc 2.36, GCC 12). The addon's references to these
 * three newer symbols are made weak-versioned by fuzz-driver.ts and resolve
 * here instead, LD_PRELOADed, onto the equivalent older functions.
 * Used only by the fuzz driver, built into .cache/ at fuzz time. */
#include <stdlib.h>

/* C23 variants differ only in accepting a 0b prefix in base 0 / 2. */
long __isoc23_strtol(const char *s, char **end, int base)
{
	return strtol(s, end, base);
}

unsigned long __isoc23_strtoul(const char *s, char **end, int base)
{
	return strtoul(s, end, base);
}

/* GCC 13 initialises the standard streams through this function; older
 * libstdc++ does it with a std::ios_base::Init object, constructed here once. */
extern void _ZNSt8ios_base4InitC1Ev(void *self);

void _ZSt21ios_base_library_initv(void)
{
	static char init_object[16];
	static int done;
	if (!done) {
		done = 1;
		_ZNSt8ios_base4InitC1Ev(init_object);
	}
}
