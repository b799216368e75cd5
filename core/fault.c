#include "core/fault.h"

#ifdef CAIRN_FAULTS
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_MAX 32

struct fault_point {
	char name[48];
	unsigned fail_from;
	unsigned hits;
};

static struct fault_point points[FAULT_MAX];
static unsigned npoints;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static struct fault_point *find_locked(const char *name, bool create)
{
	for (unsigned i = 0; i < npoints; i++)
		if (strcmp(points[i].name, name) == 0)
			return &points[i];
	if (!create || npoints == FAULT_MAX)
		return NULL;
	struct fault_point *p = &points[npoints++];
	strncpy(p->name, name, sizeof(p->name) - 1);
	return p;
}

static void arm_locked(const char *name, unsigned n)
{
	struct fault_point *p = find_locked(name, true);
	if (p) {
		p->fail_from = n;
		p->hits = 0;
	}
}

static void load_env(void)
{
	const char *env = getenv("CAIRN_FAULTS");
	if (!env)
		return;
	char buf[512];
	strncpy(buf, env, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		unsigned n = 1;
		if (colon) {
			*colon = 0;
			n = (unsigned)strtoul(colon + 1, NULL, 10);
		}
		pthread_mutex_lock(&fault_lock);
		arm_locked(tok, n);
		pthread_mutex_unlock(&fault_lock);
	}
}

bool fault_hit(const char *name)
{
	pthread_once(&env_once, load_env);
	if (npoints == 0)
		return false;
	bool fail = false;
	pthread_mutex_lock(&fault_lock);
	struct fault_point *p = find_locked(name, false);
	if (p && p->fail_from) {
		p->hits++;
		fail = p->hits >= p->fail_from;
	}
	pthread_mutex_unlock(&fault_lock);
	return fail;
}

void fault_arm(const char *name, unsigned n)
{
	pthread_once(&env_once, load_env);
	pthread_mutex_lock(&fault_lock);
	arm_locked(name, n);
	pthread_mutex_unlock(&fault_lock);
}
#endif
