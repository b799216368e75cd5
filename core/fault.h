/* core/fault.h - fault points compiled into test builds.
 *
 * FAULT("name") is true when a test asked that point to fail. Points are
 * armed by the environment variable CAIRN_FAULTS="name[:n][,name...]" (fail
 * the n-th hit and every one after it; n defaults to 1) or by fault_arm().
 * Without CAIRN_FAULTS defined at build time, FAULT() is constant false.
 * Thread-safe.
 */
#ifndef CAIRN_CORE_FAULT_H
#define CAIRN_CORE_FAULT_H

#include <stdbool.h>

#ifdef CAIRN_FAULTS
bool fault_hit(const char *name);
/* Arms a point to fail from its nth hit on (n >= 1); n == 0 disarms it. */
void fault_arm(const char *name, unsigned n);
#define FAULT(name) __builtin_expect(fault_hit(name), 0)
#else
#define FAULT(name) false
static inline void fault_arm(const char *name, unsigned n)
{
	(void)name;
	(void)n;
}
#endif

#endif
