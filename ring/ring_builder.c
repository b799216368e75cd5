/* ring/ring_builder.c - the ring builder: devices, targets and rebalance.
 *
 * The placement model. Devices form a tree: region > zone > node (ip:port
 * within a zone) > device. Every tier gets a per-partition cap: the fewest
 * replicas of one partition it may hold such that its parent's replicas still
 * fit ("as widely as the cluster allows"; a device holds at most one). The
 * R * 2^P partition-replicas are then shared out top-down by weight, each tier
 * limited to cap * 2^P (water-filling), and rounded to integer targets level by
 * level, so every tier's target is within one of its real share and a rounding
 * tie goes to the tier that already holds the extra part (fewer moves). A
 * fractional assignment that meets every target and every cap exists (give
 * each partition target/2^P of each device), so by flow integrality an exact
 * integer one does too: the rebalance aims at it.
 *
 * Dispersion therefore wins over weight when they conflict (a heavy zone is
 * capped at one replica per partition once there are R zones); the difference
 * shows up as balance against weight, and `show` prints both figures.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "ring/ring_int.h"

#define TAG "ring"

/* ---------------------------------------------------------------- tiers */

struct tier {
	uint32_t level; /* 0 root, 1 region, 2 zone, 3 node, 4 device */
	uint32_t parent;
	uint32_t first; /* children: tiers [first, first + nchild) */
	uint32_t nchild;
	uint32_t ndev;
	uint32_t capa;	 /* most replicas of one partition the tier can take */
	uint32_t cap;	 /* max replicas of one partition in this tier */
	uint32_t lo;	 /* min replicas of one partition: floor(target / 2^P) */
	uint32_t mfirst; /* children with lo > 0: mand[mfirst, mfirst + nmand) */
	uint32_t nmand;
	uint32_t dev;	 /* devices: index into b->devs */
	uint32_t hpos;	 /* position in the parent's child heap */
	uint32_t anc[5]; /* devices: ancestor at each level (anc[4] = self) */
	double weight;
	double share; /* real target, partition-replicas */
	int64_t target;
	int64_t count;
	uint64_t rank; /* seeded tie-break */
};

struct plan {
	struct tier *t;
	uint32_t nt;
	uint32_t lvl[6]; /* tiers of level L: [lvl[L], lvl[L+1]) */
	uint32_t *heap;	 /* tier t's child heap lives at heap[t.first ...] */
	uint32_t *dev2t; /* builder device index -> device tier, RING_NONE */
	uint32_t *mand;	 /* children every partition must use (lo > 0) */
	uint32_t parts;
	uint32_t R;
};

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static int dev_cmp_tier(const struct ring_dev *a, const struct ring_dev *b, int level)
{
	int c;
	if (a->region != b->region)
		return a->region < b->region ? -1 : 1;
	if (level < 2)
		return 0;
	if (a->zone != b->zone)
		return a->zone < b->zone ? -1 : 1;
	if (level < 3)
		return 0;
	c = strcmp(a->ip, b->ip);
	if (c)
		return c;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if (level < 4)
		return 0;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

static int sort_cmp(const void *x, const void *y, void *ctx)
{
	const struct ring_builder *b = ctx;
	const uint32_t *i = x, *j = y;
	return dev_cmp_tier(&b->devs[*i].d, &b->devs[*j].d, 4);
}

static void plan_free(struct plan *pl)
{
	free(pl->t);
	free(pl->heap);
	free(pl->dev2t);
	free(pl->mand);
	memset(pl, 0, sizeof(*pl));
}

static bool better(const struct plan *pl, uint32_t a, uint32_t b)
{
	int64_t wa = pl->t[a].target - pl->t[a].count;
	int64_t wb = pl->t[b].target - pl->t[b].count;
	if (wa != wb)
		return wa > wb;
	return pl->t[a].rank < pl->t[b].rank;
}

static void heap_swap(struct plan *pl, uint32_t *base, uint32_t i, uint32_t j)
{
	uint32_t x = base[i];
	base[i] = base[j];
	base[j] = x;
	pl->t[base[i]].hpos = i;
	pl->t[base[j]].hpos = j;
}

/* Restores tier c's place in its parent's heap after its count changed. */
static void heap_fix(struct plan *pl, uint32_t c)
{
	const struct tier *par = &pl->t[pl->t[c].parent];
	uint32_t *base = pl->heap + par->first;
	uint32_t n = par->nchild, pos = pl->t[c].hpos;

	while (pos > 0 && better(pl, base[pos], base[(pos - 1) / 2])) {
		heap_swap(pl, base, pos, (pos - 1) / 2);
		pos = (pos - 1) / 2;
	}
	for (;;) {
		uint32_t l = 2 * pos + 1, r = l + 1, m = pos;
		if (l < n && better(pl, base[l], base[m]))
			m = l;
		if (r < n && better(pl, base[r], base[m]))
			m = r;
		if (m == pos)
			break;
		heap_swap(pl, base, pos, m);
		pos = m;
	}
}

static void heap_build(struct plan *pl)
{
	for (uint32_t t = 0; t < pl->nt; t++) {
		struct tier *x = &pl->t[t];
		for (uint32_t i = 0; i < x->nchild; i++) {
			pl->heap[x->first + i] = x->first + i;
			pl->t[x->first + i].hpos = i;
		}
		for (uint32_t i = x->nchild; i-- > 0;)
			heap_fix(pl, pl->heap[x->first + i]);
	}
}

/* Adds delta to a device tier's count and its ancestors', keeping heaps. */
static void adjust(struct plan *pl, uint32_t dt, int delta)
{
	const struct tier *d = &pl->t[dt];
	pl->t[0].count += delta;
	for (int L = 4; L >= 1; L--) {
		pl->t[d->anc[L]].count += delta;
		heap_fix(pl, d->anc[L]);
	}
}

/* Builds the tier tree of the active devices (not removed). */
static int plan_tree(const struct ring_builder *b, struct plan *pl, bool with_removed)
{
	uint32_t n = 0, *ord = NULL;
	int ret = -ENOMEM;

	memset(pl, 0, sizeof(*pl));
	pl->parts = 1u << b->part_power;
	pl->R = b->replicas;
	ord = calloc(b->ndevs ? b->ndevs : 1, sizeof(*ord));
	pl->dev2t = malloc((b->ndevs ? b->ndevs : 1) * sizeof(*pl->dev2t));
	if (!ord || !pl->dev2t)
		goto out;
	for (uint32_t i = 0; i < b->ndevs; i++) {
		pl->dev2t[i] = RING_NONE;
		if (with_removed || !b->devs[i].removed)
			ord[n++] = i;
	}
	qsort_r(ord, n, sizeof(*ord), sort_cmp, (void *)b);
	/* count tiers per level: a new tier starts where the sort key changes */
	uint32_t cnt[5] = {1, 0, 0, 0, 0};
	for (uint32_t i = 0; i < n; i++)
		for (int L = 1; L <= 4; L++)
			if (i == 0 || dev_cmp_tier(&b->devs[ord[i - 1]].d, &b->devs[ord[i]].d, L))
				cnt[L]++;
	pl->lvl[0] = 0;
	for (int L = 0; L < 5; L++)
		pl->lvl[L + 1] = pl->lvl[L] + cnt[L];
	pl->nt = pl->lvl[5];
	pl->t = calloc(pl->nt, sizeof(*pl->t));
	pl->heap = calloc(pl->nt, sizeof(*pl->heap));
	if (!pl->t || !pl->heap)
		goto out;
	pl->t[0].parent = RING_NONE;
	uint32_t cur[5] = {0, pl->lvl[1] - 1, pl->lvl[2] - 1, pl->lvl[3] - 1, pl->lvl[4] - 1};
	for (uint32_t i = 0; i < n; i++) {
		const struct ring_dev *d = &b->devs[ord[i]].d;
		for (int L = 1; L <= 4; L++) {
			if (i != 0 && !dev_cmp_tier(&b->devs[ord[i - 1]].d, d, L))
				continue;
			uint32_t t = ++cur[L];
			struct tier *x = &pl->t[t], *p = &pl->t[cur[L - 1]];
			x->level = L;
			x->parent = cur[L - 1];
			if (p->nchild++ == 0)
				p->first = t;
			uint64_t key = L == 1	? d->region
				       : L == 2 ? ((uint64_t)d->region << 32 | d->zone)
				       : L == 3
					   ? str_hash(d->ip) ^ ((uint64_t)d->port << 48) ^ d->zone
					   : d->id;
			x->rank = mix64(b->seed ^ mix64(key * 8 + (uint64_t)L));
		}
		uint32_t dt = cur[4];
		struct tier *x = &pl->t[dt];
		x->dev = ord[i];
		x->weight = d->weight;
		for (int L = 0; L <= 4; L++)
			x->anc[L] = cur[L];
		pl->dev2t[ord[i]] = dt;
		for (int L = 0; L < 4; L++) {
			pl->t[cur[L]].weight += d->weight;
			pl->t[cur[L]].ndev++;
		}
		x->ndev = 1;
	}
	/* Capacities bottom-up: the most replicas of one partition a tier can
	 * hold while every finer level is spread as widely as the whole cluster
	 * allows (once there are R zones, a zone holds one: so a small region
	 * cannot force two replicas into its only zone). An EC zone holds at
	 * most m, unless then the cluster could not hold R replicas at all. */
	for (int with_m = b->ec_m ? 1 : 0; with_m >= 0; with_m--) {
		for (uint32_t t = pl->lvl[4]; t < pl->nt; t++)
			pl->t[t].capa = 1;
		for (int L = 3; L >= 0; L--) {
			uint32_t maxc = 0, k;
			for (uint32_t t = pl->lvl[L]; t < pl->lvl[L + 1]; t++) {
				struct tier *x = &pl->t[t];
				uint64_t sum = 0;
				for (uint32_t i = 0; i < x->nchild; i++)
					sum += pl->t[x->first + i].capa;
				if (L == 2 && with_m && sum > b->ec_m)
					sum = b->ec_m;
				x->capa = sum < pl->R ? (uint32_t)sum : pl->R;
				maxc = x->capa > maxc ? x->capa : maxc;
			}
			if (L == 0)
				break;
			for (k = 1; k < maxc; k++) {
				uint64_t sum = 0;
				for (uint32_t t = pl->lvl[L]; t < pl->lvl[L + 1]; t++)
					sum += k < pl->t[t].capa ? k : pl->t[t].capa;
				if (sum >= pl->R)
					break;
			}
			for (uint32_t t = pl->lvl[L]; t < pl->lvl[L + 1]; t++)
				if (pl->t[t].capa > k)
					pl->t[t].capa = k;
		}
		if (pl->t[0].capa >= pl->R || n < pl->R)
			break;
		log_warn(TAG, "too few zones to keep at most %u fragments per zone", b->ec_m);
	}
	ret = 0;
out:
	free(ord);
	if (ret)
		plan_free(pl);
	return ret;
}

struct share_ord {
	uint32_t t;
	double frac;
	int sticky;
};

static int share_cmp(const void *x, const void *y)
{
	const struct share_ord *a = x, *b = y;
	int fa = a->frac > 0, fb = b->frac > 0;
	if (fa != fb)
		return fb - fa;
	if (a->sticky != b->sticky)
		return b->sticky - a->sticky;
	if (a->frac != b->frac)
		return a->frac < b->frac ? 1 : -1;
	return 0; /* ties broken by the caller's rank order (stable input) */
}

static int rank_cmp(const void *x, const void *y, void *ctx)
{
	const struct plan *pl = ctx;
	const struct share_ord *a = x, *b = y;
	uint64_t ra = pl->t[a->t].rank, rb = pl->t[b->t].rank;
	return ra < rb ? -1 : ra > rb;
}

/* Caps and integer targets, top-down; counts must hold the current
 * assignment (used to keep rounding ties where the parts already are). */
static int plan_targets(struct plan *pl)
{
	uint64_t P = pl->parts;
	struct share_ord *so = NULL;
	bool *fixed = NULL;
	int ret = -ENOMEM;

	so = malloc((pl->nt + 1) * sizeof(*so));
	fixed = malloc((pl->nt + 1) * sizeof(*fixed));
	if (!so || !fixed)
		goto out;
	pl->t[0].cap = pl->R;
	pl->t[0].target = (int64_t)P * pl->R;
	pl->t[0].share = (double)pl->t[0].target;
	for (uint32_t t = 0; t < pl->lvl[4]; t++) {
		struct tier *x = &pl->t[t];
		struct tier *c = &pl->t[x->first];
		uint32_t n = x->nchild, k;

		/* the smallest per-child cap that still fits the parent's cap */
		for (k = 1;; k++) {
			uint64_t sum = 0;
			for (uint32_t i = 0; i < n; i++)
				sum += k < c[i].capa ? k : c[i].capa;
			if (sum >= x->cap)
				break;
		}
		for (uint32_t i = 0; i < n; i++) {
			c[i].cap = k < c[i].capa ? k : c[i].capa;
			fixed[i] = false;
		}
		/* water-fill the parent's integer target by weight under the caps */
		double rem = (double)x->target, wfree = x->weight;
		for (bool again = true; again;) {
			again = false;
			for (uint32_t i = 0; i < n; i++) {
				if (fixed[i])
					continue;
				double s = wfree > 0 ? rem * c[i].weight / wfree : 0;
				if (s >= (double)c[i].cap * P) {
					c[i].share = (double)c[i].cap * P;
					fixed[i] = true;
					rem -= c[i].share;
					wfree -= c[i].weight;
					again = true;
				}
			}
		}
		int64_t sumf = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (!fixed[i])
				c[i].share = wfree > 0 ? rem * c[i].weight / wfree : 0;
			/* shares within 1e-7 of an integer are that integer */
			double f = floor(c[i].share + 1e-7);
			c[i].target = (int64_t)f;
			sumf += c[i].target;
			so[i].t = x->first + i;
			so[i].frac = c[i].share - f > 1e-7 ? c[i].share - f : 0;
			so[i].sticky = c[i].count >= c[i].target + 1;
		}
		int64_t left = x->target - sumf;
		qsort_r(so, n, sizeof(*so), rank_cmp, pl);
		/* stable: a merge of equal keys keeps rank order (insertion sort) */
		for (uint32_t i = 1; i < n; i++) {
			struct share_ord v = so[i];
			uint32_t j = i;
			while (j > 0 && share_cmp(&so[j - 1], &v) > 0) {
				so[j] = so[j - 1];
				j--;
			}
			so[j] = v;
		}
		/* the leftover units go to fractional shares (sorted above); a
		 * second pass only mops up float error, never past a cap */
		for (uint32_t pass = 0; left > 0 && pass < 2; pass++)
			for (uint32_t i = 0; i < n && left > 0; i++) {
				struct tier *y = &pl->t[so[i].t];
				bool bumped = y->target > (int64_t)floor(y->share + 1e-7);
				if (y->target + 1 > (int64_t)y->cap * (int64_t)P || bumped)
					continue;
				if (pass == 0 && so[i].frac <= 0)
					continue;
				y->target++;
				left--;
			}
		if (left != 0) {
			log_err(TAG, "cannot round the targets of a tier (%lld left)",
				(long long)left);
			ret = CAIRN_EINVAL;
			goto out;
		}
	}
	/* lower bounds: a tier whose target is at least one replica of every
	 * partition holds at least floor(target / 2^P) of each, so a partition
	 * spreads over all the zones it can (2+2+1+1, not 2+2+2+0) */
	pl->mand = malloc((pl->nt + 1) * sizeof(*pl->mand));
	if (!pl->mand) {
		ret = -ENOMEM;
		goto out;
	}
	uint32_t nm = 0;
	for (uint32_t t = 0; t < pl->nt; t++) {
		struct tier *x = &pl->t[t];
		x->lo = (uint32_t)(x->target / (int64_t)P);
		x->mfirst = nm;
		x->nmand = 0;
		for (uint32_t i = 0; i < x->nchild && x->level < 4; i++)
			if (pl->t[x->first + i].target >= (int64_t)P) {
				pl->mand[nm++] = x->first + i;
				x->nmand++;
			}
	}
	ret = 0;
out:
	free(so);
	free(fixed);
	return ret;
}

/* ------------------------------------------------------------ builder API */

int ring_builder_create(uint32_t part_power, uint32_t replicas, uint32_t min_part_hours,
			struct ring_builder **out)
{
	struct ring_builder *b;

	*out = NULL;
	if (part_power > RING_PART_POWER_MAX || replicas < 1 || replicas > RING_REPLICAS_MAX ||
	    min_part_hours > 24 * 365 * 100)
		return CAIRN_EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->part_power = part_power;
	b->replicas = replicas;
	b->min_part_hours = min_part_hours;
	if (RAND_bytes(b->secret, sizeof(b->secret)) != 1) {
		free(b);
		return -EIO;
	}
	*out = b;
	return 0;
}

void ring_builder_free(struct ring_builder *b)
{
	if (!b)
		return;
	free(b->devs);
	free(b->table);
	free(b->last_moved);
	free(b->moves);
	explicit_bzero(b->secret, sizeof(b->secret));
	free(b);
}

static int find_dev(const struct ring_builder *b, uint32_t id)
{
	/* devices are kept sorted by id: binary search */
	uint32_t lo = 0, hi = b->ndevs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (b->devs[mid].d.id == id)
			return (int)mid;
		if (b->devs[mid].d.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static bool weight_ok(double w)
{
	return isfinite(w) && w > 0 && w < 1e12;
}

int ring_builder_add(struct ring_builder *b, const struct ring_dev *dev, uint32_t *id_out)
{
	struct ring_dev d = *dev;

	if (!weight_ok(d.weight) || d.ip[0] == '\0' || d.name[0] == '\0' ||
	    memchr(d.ip, '\0', sizeof(d.ip)) == NULL ||
	    memchr(d.name, '\0', sizeof(d.name)) == NULL)
		return CAIRN_EINVAL;
	if (d.id == UINT32_MAX) {
		d.id = 0;
		if (b->ndevs)
			d.id = b->devs[b->ndevs - 1].d.id + 1;
		/* reuse no id of a device that still holds partitions: ids only grow */
	}
	if (d.id >= RING_DEV_ID_MAX)
		return CAIRN_EINVAL;
	if (find_dev(b, d.id) >= 0)
		return CAIRN_EEXISTS;
	if (b->ndevs == b->cap) {
		uint32_t nc = b->cap ? b->cap * 2 : 16;
		struct rb_dev *nd = realloc(b->devs, nc * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		b->devs = nd;
		b->cap = nc;
	}
	uint32_t pos = b->ndevs;
	while (pos > 0 && b->devs[pos - 1].d.id > d.id)
		pos--;
	memmove(&b->devs[pos + 1], &b->devs[pos], (b->ndevs - pos) * sizeof(*b->devs));
	memset(&b->devs[pos], 0, sizeof(b->devs[pos]));
	b->devs[pos].d = d;
	b->ndevs++;
	if (id_out)
		*id_out = d.id;
	return 0;
}

int ring_builder_remove(struct ring_builder *b, uint32_t id)
{
	int i = find_dev(b, id);
	if (i < 0 || b->devs[i].removed)
		return CAIRN_ENOTFOUND;
	if (b->table) {
		b->devs[i].removed = true; /* its parts move at the next rebalance */
		return 0;
	}
	memmove(&b->devs[i], &b->devs[i + 1], (b->ndevs - i - 1) * sizeof(*b->devs));
	b->ndevs--;
	return 0;
}

int ring_builder_set_weight(struct ring_builder *b, uint32_t id, double weight)
{
	int i = find_dev(b, id);
	if (!weight_ok(weight))
		return CAIRN_EINVAL;
	if (i < 0 || b->devs[i].removed)
		return CAIRN_ENOTFOUND;
	b->devs[i].d.weight = weight;
	return 0;
}

void ring_builder_set_secret(struct ring_builder *b, const uint8_t secret[RING_SECRET_LEN])
{
	memcpy(b->secret, secret, RING_SECRET_LEN);
}

void ring_builder_set_ec_m(struct ring_builder *b, uint32_t m)
{
	b->ec_m = m;
}

void ring_builder_set_seed(struct ring_builder *b, uint64_t seed)
{
	b->seed = seed;
}

uint32_t ring_builder_part_power(const struct ring_builder *b)
{
	return b->part_power;
}
uint32_t ring_builder_replicas(const struct ring_builder *b)
{
	return b->replicas;
}
uint32_t ring_builder_min_part_hours(const struct ring_builder *b)
{
	return b->min_part_hours;
}
uint32_t ring_builder_ec_m(const struct ring_builder *b)
{
	return b->ec_m;
}
uint64_t ring_builder_generation(const struct ring_builder *b)
{
	return b->generation;
}
uint32_t ring_builder_dev_count(const struct ring_builder *b)
{
	return b->ndevs;
}

const struct ring_dev *ring_builder_dev_at(const struct ring_builder *b, uint32_t i, bool *removed)
{
	if (i >= b->ndevs)
		return NULL;
	if (removed)
		*removed = b->devs[i].removed;
	return &b->devs[i].d;
}

const uint32_t *ring_builder_part_devs(const struct ring_builder *b, uint32_t part)
{
	if (!b->table || part >= (1u << b->part_power))
		return NULL;
	return b->table + (size_t)part * b->replicas;
}

const struct ring_move *ring_builder_moves(const struct ring_builder *b, size_t *n)
{
	*n = b->nmoves;
	return b->moves;
}

/* ----------------------------------------------------------- rebalance */

struct rebal {
	struct plan pl;
	uint32_t *w;	/* parts x R device tiers, RING_NONE = unassigned */
	uint64_t *lm;	/* last_moved working copy */
	uint8_t *fresh; /* partition had no replica at all: placing it is no move */
	uint64_t now;
	uint64_t window; /* min_part_hours in seconds; 0 = no lock */
	uint64_t rng;	 /* seeded: same inputs, same picks */
	bool honor_lo;	 /* moves keep tiers at their floors (a preference) */
};

static int64_t want(const struct plan *pl, uint32_t t)
{
	return pl->t[t].target - pl->t[t].count;
}

static bool locked(const struct rebal *rb, uint32_t p)
{
	uint64_t lm = rb->lm[p];
	if (rb->window == 0 || rb->fresh[p] || lm == RING_NEVER)
		return false;
	return rb->now < lm || rb->now - lm < rb->window;
}

static void mark_moved(struct rebal *rb, uint32_t p)
{
	if (!rb->fresh[p])
		rb->lm[p] = rb->now;
}

/* Replicas of p in tier t (at t's level). O(R). */
static uint32_t usage(const struct rebal *rb, uint32_t p, uint32_t t)
{
	const struct plan *pl = &rb->pl;
	const uint32_t *row = rb->w + (size_t)p * pl->R;
	uint32_t L = pl->t[t].level, n = 0;
	for (uint32_t r = 0; r < pl->R; r++)
		if (row[r] != RING_NONE && pl->t[row[r]].anc[L] == t)
			n++;
	return n;
}

/* A device for one more replica of p: level by level, a child under its cap
 * with (nearly) the most parts wanted. Never dead-ends: a tier under its cap
 * always has a child under its cap (caps were sized so). Among the best few
 * legal children whose want is within 1/8 of the best, one is drawn from the
 * seeded generator: pure greedy would deal zones in a fixed rotation, so
 * partitions would come in a few zone combinations and a later change could
 * find no partition free to move. Near the end wants are small and the pick
 * is greedy, so balance does not suffer. */
static uint32_t pick_dev(struct rebal *rb, uint32_t p)
{
	const struct plan *pl = &rb->pl;
	uint32_t t = 0, fr[2 * RING_REPLICAS_MAX + 16];

	while (pl->t[t].level < 4) {
		const struct tier *x = &pl->t[t];
		const uint32_t *base = pl->heap + x->first;
		uint32_t nf = 1, cand[4], nc = 0, must = RING_NONE;
		for (uint32_t i = 0; i < x->nmand; i++) {
			uint32_t c = pl->mand[x->mfirst + i];
			if (usage(rb, p, c) < pl->t[c].lo &&
			    (must == RING_NONE || better(pl, c, must)))
				must = c;
		}
		if (must != RING_NONE) {
			t = must;
			continue;
		}
		fr[0] = 0;
		while (nf && nc < 4) {
			uint32_t bi = 0;
			for (uint32_t i = 1; i < nf; i++)
				if (better(pl, base[fr[i]], base[fr[bi]]))
					bi = i;
			uint32_t pos = fr[bi];
			fr[bi] = fr[--nf];
			uint32_t c = base[pos];
			if (usage(rb, p, c) < pl->t[c].cap)
				cand[nc++] = c;
			if (2 * pos + 1 < x->nchild && nf < 2 * RING_REPLICAS_MAX + 14)
				fr[nf++] = 2 * pos + 1;
			if (2 * pos + 2 < x->nchild && nf < 2 * RING_REPLICAS_MAX + 14)
				fr[nf++] = 2 * pos + 2;
		}
		if (nc == 0)
			return RING_NONE;
		int64_t best = want(pl, cand[0]), slack = best > 0 ? best / 8 : 0;
		uint32_t ok = 1;
		while (ok < nc && want(pl, cand[ok]) >= best - slack)
			ok++;
		rb->rng = mix64(rb->rng);
		t = cand[ok > 1 ? rb->rng % ok : 0];
	}
	return t;
}

/* Can p's replica on device tier o go to device tier u within the caps? */
static bool move_ok(const struct rebal *rb, uint32_t p, uint32_t o, uint32_t u)
{
	const struct plan *pl = &rb->pl;
	const uint32_t *row = rb->w + (size_t)p * pl->R;
	for (uint32_t r = 0; r < pl->R; r++)
		if (row[r] == u)
			return false;
	for (int L = 3; L >= 1; L--) {
		uint32_t tu = pl->t[u].anc[L], to = pl->t[o].anc[L];
		if (tu == to)
			break; /* same subtree from here up: no usage changes */
		if (usage(rb, p, tu) + 1 > pl->t[tu].cap)
			return false;
		if (rb->honor_lo && pl->t[to].lo > 0 && usage(rb, p, to) <= pl->t[to].lo)
			return false; /* would leave o's tier under its floor */
	}
	return true;
}

static int under_cmp(const void *x, const void *y, void *ctx)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	if (a == b)
		return 0;
	return better(ctx, a, b) ? -1 : 1;
}

/* Moves replicas from devices over target straight to devices under target:
 * each move fixes one part of imbalance on both ends, so adding capacity
 * moves no more than the new capacity's target. Returns the moves made. */
static int balance_direct(struct rebal *rb, uint64_t *nmoves)
{
	struct plan *pl = &rb->pl;
	uint32_t R = pl->R, nd = pl->lvl[5] - pl->lvl[4];
	uint32_t *under = NULL, *over = NULL, *off = NULL, *slots = NULL;
	int64_t *slack = NULL;
	size_t nslots = (size_t)pl->parts * R;
	int ret = -ENOMEM;

	under = malloc(nd * sizeof(*under));
	over = malloc(nd * sizeof(*over));
	off = calloc(nd + 1, sizeof(*off));
	slots = malloc(nslots * sizeof(*slots));
	slack = malloc(nd * sizeof(*slack));
	if (!under || !over || !off || !slots || !slack)
		goto out;
	for (int round = 0; round < 16; round++) {
		uint32_t nu = 0, no = 0;
		uint64_t progress = 0;
		for (uint32_t i = 0; i < nd; i++) {
			uint32_t t = pl->lvl[4] + i;
			if (want(pl, t) > 0)
				under[nu++] = t;
			else if (want(pl, t) < 0)
				over[no++] = t;
		}
		if (!nu || !no)
			break;
		qsort_r(under, nu, sizeof(*under), under_cmp, pl);
		/* slot lists of the over devices (counting sort by device) */
		memset(off, 0, (nd + 1) * sizeof(*off));
		for (size_t s = 0; s < nslots; s++)
			if (rb->w[s] != RING_NONE && want(pl, rb->w[s]) < 0)
				off[rb->w[s] - pl->lvl[4] + 1]++;
		for (uint32_t i = 0; i < nd; i++)
			off[i + 1] += off[i];
		for (size_t s = 0; s < nslots; s++)
			if (rb->w[s] != RING_NONE && want(pl, rb->w[s]) < 0)
				slots[off[rb->w[s] - pl->lvl[4]]++] = (uint32_t)s;
		for (uint32_t i = nd; i > 0; i--)
			off[i] = off[i - 1];
		off[0] = 0;
		/* most constrained first: over devices with the least slack between
		 * movable replicas and overload pick before others use up their
		 * candidates */
		for (uint32_t oi = 0; oi < no; oi++) {
			uint32_t o = over[oi], di = o - pl->lvl[4];
			int64_t cand = 0;
			for (uint32_t k = off[di]; k < off[di + 1]; k++) {
				uint32_t p = slots[k] / R;
				if (locked(rb, p))
					continue;
				for (uint32_t ui = 0; ui < nu && ui < 8; ui++)
					if (move_ok(rb, p, o, under[ui])) {
						cand++;
						break;
					}
			}
			slack[oi] = cand + want(pl, o);
		}
		for (uint32_t i = 1; i < no; i++) {
			uint32_t v = over[i];
			int64_t sv = slack[i];
			uint32_t j = i;
			while (j > 0 && slack[j - 1] > sv) {
				over[j] = over[j - 1];
				slack[j] = slack[j - 1];
				j--;
			}
			over[j] = v;
			slack[j] = sv;
		}
		for (uint32_t oi = 0; oi < no; oi++) {
			uint32_t o = over[oi], di = o - pl->lvl[4];
			/* pass 0 skips partitions whose other replicas sit on over-full
			 * devices too: those may be the only ones that can help them */
			for (int pass = 0; pass < 2; pass++)
				for (uint32_t k = off[di]; k < off[di + 1] && want(pl, o) < 0;
				     k++) {
					uint32_t s = slots[k], p = s / R;
					if (rb->w[s] != o || locked(rb, p))
						continue;
					if (pass == 0) {
						bool shared = false;
						for (uint32_t r = 0; r < R; r++) {
							uint32_t x = rb->w[(size_t)p * R + r];
							shared |= x != o && x != RING_NONE &&
								  want(pl, x) < 0;
						}
						if (shared)
							continue;
					}
					/* the legal under-full device that is least full
					 * relative to its target: when min_part_hours
					 * cuts a rebalance short, all new devices have
					 * filled alike */
					uint32_t u = RING_NONE;
					for (uint32_t ui = 0; ui < nu; ui++) {
						uint32_t v = under[ui];
						if (want(pl, v) <= 0)
							continue;
						if (u != RING_NONE &&
						    pl->t[v].count * pl->t[u].target >=
							pl->t[u].count * pl->t[v].target)
							continue;
						if (move_ok(rb, p, o, v))
							u = v;
					}
					if (u != RING_NONE) {
						rb->w[s] = u;
						adjust(pl, o, -1);
						adjust(pl, u, +1);
						if (!rb->fresh[p])
							(*nmoves)++;
						mark_moved(rb, p);
						progress++;
					}
				}
		}
		log_debug(TAG, "direct round %d: %u under, %u over, %llu moves", round, nu, no,
			  (unsigned long long)progress);
		if (!progress)
			break;
	}
	ret = 0;
out:
	free(under);
	free(over);
	free(off);
	free(slots);
	free(slack);
	return ret;
}

/* When no single move helps (every partition on the over-full devices already
 * has a replica where the under-full ones are), move along a chain: p from x
 * to under-full u, then q from over-full o to x, and so on. Breadth-first
 * from the under-full devices, so the shortest chain (fewest moves) wins.
 * Cost: one BFS layer checks every partition-replica against the layer's
 * devices; `budget` bounds the total so a huge stuck ring stays quick (what
 * is left over stays visible as balance). */
static int balance_chains(struct rebal *rb, uint64_t *nmoves)
{
	struct plan *pl = &rb->pl;
	uint32_t R = pl->R, d0 = pl->lvl[4], nd = pl->lvl[5] - d0;
	uint32_t *dist = NULL, *nexts = NULL, *via = NULL, *layer = NULL, *nlayer = NULL;
	uint64_t budget = 400u * 1000 * 1000;
	int ret = -ENOMEM;

	dist = malloc(nd * sizeof(*dist));
	nexts = malloc(nd * sizeof(*nexts));
	via = malloc(nd * sizeof(*via));
	layer = malloc(nd * sizeof(*layer));
	nlayer = malloc(nd * sizeof(*nlayer));
	if (!dist || !nexts || !via || !layer || !nlayer)
		goto out;
	ret = 0;
	for (;;) {
		uint32_t nl = 0, found = RING_NONE;
		bool any_over = false;
		for (uint32_t i = 0; i < nd; i++) {
			dist[i] = RING_NONE;
			if (want(pl, d0 + i) > 0) {
				dist[i] = 0;
				layer[nl++] = d0 + i;
			} else if (want(pl, d0 + i) < 0) {
				any_over = true;
			}
		}
		if (!nl || !any_over)
			break;
		for (uint32_t depth = 1; depth <= 4 && nl && found == RING_NONE; depth++) {
			uint32_t nn = 0;
			uint64_t cost = (uint64_t)pl->parts * R * nl;
			if (cost > budget)
				goto out;
			budget -= cost;
			for (uint32_t p = 0; p < pl->parts && found == RING_NONE; p++) {
				if (locked(rb, p))
					continue;
				for (uint32_t r = 0; r < R; r++) {
					uint32_t x = rb->w[(size_t)p * R + r];
					if (dist[x - d0] != RING_NONE)
						continue;
					for (uint32_t k = 0; k < nl; k++) {
						if (!move_ok(rb, p, x, layer[k]))
							continue;
						dist[x - d0] = depth;
						nexts[x - d0] = layer[k];
						via[x - d0] = p * R + r;
						nlayer[nn++] = x;
						if (want(pl, x) < 0)
							found = x;
						break;
					}
					if (found != RING_NONE)
						break;
				}
			}
			memcpy(layer, nlayer, nn * sizeof(*layer));
			nl = nn;
			log_debug(TAG, "chains: depth %u, %u devices, found %u", depth, nl, found);
		}
		if (found == RING_NONE)
			break;
		/* the chain's partitions must differ, or the checks above do not hold */
		bool distinct = true;
		for (uint32_t x = found; dist[x - d0] > 0 && distinct; x = nexts[x - d0])
			for (uint32_t y = nexts[x - d0]; dist[y - d0] > 0; y = nexts[y - d0])
				if (via[x - d0] / R == via[y - d0] / R)
					distinct = false;
		if (!distinct)
			break;
		for (uint32_t x = found; dist[x - d0] > 0;) {
			uint32_t y = nexts[x - d0], s = via[x - d0];
			rb->w[s] = y;
			adjust(pl, x, -1);
			adjust(pl, y, +1);
			if (!rb->fresh[s / R])
				(*nmoves)++;
			mark_moved(rb, s / R);
			x = y;
		}
	}
out:
	free(dist);
	free(nexts);
	free(via);
	free(layer);
	free(nlayer);
	return ret;
}

static int rebalance_run(struct ring_builder *b, struct rebal *rb, uint64_t *moved_out)
{
	struct plan *pl = &rb->pl;
	uint32_t R = b->replicas, parts = 1u << b->part_power;
	size_t nslots = (size_t)parts * R;
	uint64_t nmoves = 0;
	int ret;

	ret = plan_tree(b, pl, false);
	if (ret)
		return ret;
	if (pl->lvl[5] - pl->lvl[4] < R) {
		log_err(TAG, "%u replicas need at least %u devices with weight, have %u", R, R,
			pl->lvl[5] - pl->lvl[4]);
		return CAIRN_EINVAL;
	}
	rb->w = malloc(nslots * sizeof(*rb->w));
	rb->lm = malloc(parts * sizeof(*rb->lm));
	rb->fresh = calloc(parts, 1);
	if (!rb->w || !rb->lm || !rb->fresh)
		return -ENOMEM;
	/* device ids -> device tiers; removed devices' replicas are forced out */
	for (size_t s = 0; s < nslots; s++) {
		uint32_t dt = RING_NONE;
		if (b->table && b->table[s] != RING_NONE) {
			int i = find_dev(b, b->table[s]);
			if (i >= 0)
				dt = pl->dev2t[i];
		}
		rb->w[s] = dt;
	}
	for (uint32_t p = 0; p < parts; p++) {
		rb->lm[p] = b->last_moved ? b->last_moved[p] : RING_NEVER;
		bool any = false;
		for (uint32_t r = 0; r < R; r++)
			any |= b->table && b->table[(size_t)p * R + r] != RING_NONE;
		rb->fresh[p] = !any;
	}
	/* duplicates of one device in a partition (should never be): drop extras */
	for (uint32_t p = 0; p < parts; p++) {
		uint32_t *row = rb->w + (size_t)p * R;
		for (uint32_t r = 0; r < R; r++)
			for (uint32_t q = 0; q < r; q++)
				if (row[r] != RING_NONE && row[r] == row[q])
					row[r] = RING_NONE;
	}
	for (size_t s = 0; s < nslots; s++)
		if (rb->w[s] != RING_NONE) {
			const struct tier *d = &pl->t[rb->w[s]];
			for (int L = 0; L <= 4; L++)
				pl->t[d->anc[L]].count++;
		}
	ret = plan_targets(pl);
	if (ret)
		return ret;
	heap_build(pl);

	/* gather: replicas of gone devices, then dispersion over the caps */
	for (uint32_t p = 0; p < parts; p++) {
		uint32_t *row = rb->w + (size_t)p * R;
		bool lost = false;
		for (uint32_t r = 0; r < R; r++)
			if (row[r] == RING_NONE && !rb->fresh[p]) {
				lost = true;
				nmoves++; /* a device went: this replica must be rebuilt */
			}
		if (lost)
			mark_moved(rb, p);
		for (int L = 1; L <= 3 && !rb->fresh[p]; L++) {
			for (uint32_t r = 0; r < R; r++) {
				if (row[r] == RING_NONE)
					continue;
				uint32_t t = pl->t[row[r]].anc[L];
				if (usage(rb, p, t) <= pl->t[t].cap || locked(rb, p))
					continue;
				/* unassign the replica in t on its most over-full device */
				uint32_t best = RING_NONE;
				for (uint32_t q = 0; q < R; q++)
					if (row[q] != RING_NONE && pl->t[row[q]].anc[L] == t &&
					    (best == RING_NONE ||
					     want(pl, row[q]) < want(pl, row[best])))
						best = q;
				adjust(pl, row[best], -1);
				row[best] = RING_NONE;
				nmoves++;
				mark_moved(rb, p);
			}
		}
	}
	/* place every unassigned replica on the most wanting legal device */
	for (uint32_t p = 0; p < parts; p++) {
		uint32_t *row = rb->w + (size_t)p * R;
		for (uint32_t r = 0; r < R; r++) {
			if (row[r] != RING_NONE)
				continue;
			uint32_t d = pick_dev(rb, p);
			if (d == RING_NONE) {
				log_err(TAG, "no device for partition %u replica %u", p, r);
				return CAIRN_EINVAL;
			}
			row[r] = d;
			adjust(pl, d, +1);
		}
	}
	/* first keeping the floors, then, if that leaves imbalance, without */
	for (int pass = 0; pass < 2 && !ret; pass++) {
		rb->honor_lo = pass == 0;
		ret = balance_direct(rb, &nmoves);
		if (!ret)
			ret = balance_chains(rb, &nmoves);
		if (!ret)
			ret = balance_direct(rb, &nmoves);
	}
	if (ret)
		return ret;
	*moved_out = nmoves;
	return 0;
}

int ring_builder_rebalance(struct ring_builder *b, uint64_t now, uint64_t *moved)
{
	struct rebal rb = {.now = now,
			   .window = (uint64_t)b->min_part_hours * 3600,
			   .rng = mix64(b->seed ^ 0x72696e67ull)};
	uint32_t R = b->replicas, parts = 1u << b->part_power;
	size_t nslots = (size_t)parts * R;
	uint32_t *table = NULL;
	uint64_t nmoves = 0;
	struct ring_move *mv = NULL;
	size_t nmv = 0, mvcap = 0;
	int ret;

	ret = rebalance_run(b, &rb, &nmoves);
	if (ret)
		goto out;
	table = malloc(nslots * sizeof(*table));
	if (!table) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t s = 0; s < nslots; s++) {
		table[s] = b->devs[rb.pl.t[rb.w[s]].dev].d.id;
		uint32_t old = b->table ? b->table[s] : RING_NONE;
		if (old == RING_NONE || old == table[s] || rb.fresh[s / R])
			continue;
		if (nmv == mvcap) {
			size_t nc = mvcap ? mvcap * 2 : 256;
			struct ring_move *n = realloc(mv, nc * sizeof(*n));
			if (!n) {
				ret = -ENOMEM;
				goto out;
			}
			mv = n;
			mvcap = nc;
		}
		mv[nmv++] = (struct ring_move){(uint32_t)(s / R), (uint32_t)(s % R), old, table[s]};
	}
	/* commit: nothing above changed the builder */
	bool changed = !b->table || memcmp(table, b->table, nslots * sizeof(*table)) != 0;
	free(b->table);
	b->table = table;
	table = NULL;
	free(b->last_moved);
	b->last_moved = rb.lm;
	rb.lm = NULL;
	free(b->moves);
	b->moves = mv;
	b->nmoves = nmv;
	mv = NULL;
	uint32_t j = 0;
	for (uint32_t i = 0; i < b->ndevs; i++)
		if (!b->devs[i].removed)
			b->devs[j++] = b->devs[i];
	b->ndevs = j;
	if (changed)
		b->generation++;
	if (moved)
		*moved = nmv;
	(void)nmoves;
	log_info(TAG, "rebalanced: %zu partition-replicas moved, generation %llu", nmv,
		 (unsigned long long)b->generation);
out:
	free(table);
	free(mv);
	free(rb.w);
	free(rb.lm);
	free(rb.fresh);
	plan_free(&rb.pl);
	return ret;
}

/* ------------------------------------------------------------- figures */

int ring_builder_stats(const struct ring_builder *b, struct ring_stats *st,
		       struct ring_dev_stat *ds)
{
	struct plan pl;
	uint32_t R = b->replicas, parts = 1u << b->part_power;
	size_t nslots = (size_t)parts * R;
	uint32_t *row_t = NULL;
	double wtot = 0;
	int ret;

	memset(st, 0, sizeof(*st));
	if (!b->table)
		return CAIRN_EINVAL;
	ret = plan_tree(b, &pl, true); /* the assignment as it stands */
	if (ret)
		return ret;
	row_t = malloc(nslots * sizeof(*row_t));
	if (!row_t) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t s = 0; s < nslots; s++) {
		int i = b->table[s] == RING_NONE ? -1 : find_dev(b, b->table[s]);
		row_t[s] = i < 0 ? RING_NONE : pl.dev2t[i];
		if (row_t[s] == RING_NONE) {
			st->unassigned++;
			continue;
		}
		for (int L = 0; L <= 4; L++)
			pl.t[pl.t[row_t[s]].anc[L]].count++;
	}
	if (pl.lvl[5] - pl.lvl[4] >= R) {
		ret = plan_targets(&pl);
		if (ret)
			goto out;
	}
	wtot = pl.t[0].weight;
	st->zones = pl.lvl[3] - pl.lvl[2];
	for (uint32_t i = 0; i < b->ndevs; i++) {
		uint32_t t = pl.dev2t[i];
		struct ring_dev_stat x = {.id = b->devs[i].d.id};
		if (t != RING_NONE) {
			x.parts = (uint64_t)pl.t[t].count;
			x.weight_share = wtot > 0 ? (double)nslots * pl.t[t].weight / wtot : 0;
			x.wanted = pl.t[t].share;
			x.balance =
			    x.weight_share > 0 ? 100.0 * ((double)x.parts / x.weight_share - 1) : 0;
			if (fabs(x.balance) > st->balance)
				st->balance = fabs(x.balance);
			if (x.balance > st->overload)
				st->overload = x.balance;
			if (x.wanted > 0) {
				double bw = 100.0 * fabs((double)x.parts / x.wanted - 1);
				if (bw > st->balance_wanted)
					st->balance_wanted = bw;
			}
		} else {
			for (size_t s = 0; s < nslots; s++)
				x.parts += b->table[s] == x.id;
		}
		if (ds)
			ds[i] = x;
	}
	uint64_t bad = 0;
	for (uint32_t p = 0; p < parts; p++) {
		const uint32_t *row = row_t + (size_t)p * R;
		bool over = false;
		uint32_t maxz = 0;
		for (uint32_t r = 0; r < R; r++) {
			if (row[r] == RING_NONE)
				continue;
			for (int L = 1; L <= 4; L++) {
				uint32_t t = pl.t[row[r]].anc[L], n = 0;
				for (uint32_t q = 0; q < R; q++)
					n += row[q] != RING_NONE && pl.t[row[q]].anc[L] == t;
				if (n > pl.t[t].cap)
					over = true;
				if (L == 2 && n > maxz)
					maxz = n;
			}
		}
		bad += over;
		if (maxz > st->max_in_zone)
			st->max_in_zone = maxz;
		if (b->ec_m && maxz > b->ec_m)
			st->parts_over_m++;
	}
	st->dispersion = 100.0 * (double)bad / parts;
	ret = 0;
out:
	free(row_t);
	plan_free(&pl);
	return ret;
}

int ring_builder_validate(const struct ring_builder *b, char *why, size_t why_len)
{
	struct ring_stats st;
	uint32_t R = b->replicas, parts = 1u << b->part_power;
	char dummy[8];
	int ret;

	if (!why) {
		why = dummy;
		why_len = sizeof(dummy);
	}
	why[0] = '\0';
	if (!b->table) {
		snprintf(why, why_len, "never rebalanced");
		return CAIRN_EINVAL;
	}
	for (uint32_t p = 0; p < parts; p++) {
		const uint32_t *row = b->table + (size_t)p * R;
		for (uint32_t r = 0; r < R; r++) {
			if (row[r] == RING_NONE || find_dev(b, row[r]) < 0) {
				snprintf(why, why_len, "partition %u replica %u has no device", p,
					 r);
				return CAIRN_ECORRUPT;
			}
			for (uint32_t q = 0; q < r; q++)
				if (row[q] == row[r]) {
					snprintf(why, why_len, "partition %u has device %u twice",
						 p, row[r]);
					return CAIRN_ECORRUPT;
				}
		}
	}
	ret = ring_builder_stats(b, &st, NULL);
	if (ret)
		return ret;
	if (st.dispersion > 0) {
		snprintf(why, why_len,
			 "%.2f%% of partitions are spread less widely than the cluster allows",
			 st.dispersion);
		return CAIRN_EINVAL;
	}
	return 0;
}
