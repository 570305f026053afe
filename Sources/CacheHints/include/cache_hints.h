/* Cache hints that Swift's standard library does not expose, for PluginKit's kernels. */
#ifndef FEDHOST_CACHE_HINTS_H
#define FEDHOST_CACHE_HINTS_H

/* Starts loading the cache line holding `address` into every cache level, without waiting
 * for it and without faulting (any address may be passed). */
static inline void fedhost_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
