/* chunkstore/cs_epoch.c - grace periods for freeing what readers and
 * writers may still hold (dead chunks, doomed manifests, replaced unit
 * files).
 *
 * Two slots: entrants join the slot of the current epoch. cs_epoch_wait()
 * moves new entrants to the other slot and waits for the old one to drain.
 * Waits are serialised, so the slot it hands to new entrants was drained by
 * the previous wait.
 */
#include "chunkstore/cs_internal.h"

void cs_epoch_init(struct cs_pool *pool)
{
	pthread_mutex_init(&pool->ep_mu, NULL);
	pthread_mutex_init(&pool->ep_wait_mu, NULL);
	pthread_cond_init(&pool->ep_cv, NULL);
	pool->ep_cur = 0;
	pool->ep_active[0] = pool->ep_active[1] = 0;
}

void cs_epoch_destroy(struct cs_pool *pool)
{
	pthread_mutex_destroy(&pool->ep_mu);
	pthread_mutex_destroy(&pool->ep_wait_mu);
	pthread_cond_destroy(&pool->ep_cv);
}

uint64_t cs_epoch_enter(struct cs_pool *pool)
{
	pthread_mutex_lock(&pool->ep_mu);
	uint64_t e = pool->ep_cur;
	pool->ep_active[e & 1]++;
	pthread_mutex_unlock(&pool->ep_mu);
	return e;
}

void cs_epoch_exit(struct cs_pool *pool, uint64_t ticket)
{
	pthread_mutex_lock(&pool->ep_mu);
	if (--pool->ep_active[ticket & 1] == 0)
		pthread_cond_broadcast(&pool->ep_cv);
	pthread_mutex_unlock(&pool->ep_mu);
}

void cs_epoch_wait(struct cs_pool *pool)
{
	pthread_mutex_lock(&pool->ep_wait_mu);
	pthread_mutex_lock(&pool->ep_mu);
	uint64_t old = pool->ep_cur++;
	while (pool->ep_active[old & 1] > 0)
		pthread_cond_wait(&pool->ep_cv, &pool->ep_mu);
	pthread_mutex_unlock(&pool->ep_mu);
	pthread_mutex_unlock(&pool->ep_wait_mu);
}
