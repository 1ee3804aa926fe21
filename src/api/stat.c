/* SPDX-License-Identifier: MIT */
/*
 * uf_stat_*: the public side of the fault recorder (src/base/record.c):
 * switching it on, reading its table, and the histogram's arithmetic.
 */
#include <errno.h>
#include <string.h>
#include "api/api.h"
#include "base/record.h"

int uf_stat_enable(void)
{
	return rec_enable();
}

int uf_stat_create(void)
{
	return rec_create();
}

int uf_stat_attach(int fd)
{
	return rec_attach(fd);
}

int uf_stat_get(struct uf_stat *out, int max)
{
	struct rec_table *t = atomic_load(&g_rec);
	int n;

	if (!t)
		return 0;
	n = (int)atomic_load(&t->nslots);
	if (n > UF_STAT_MAX)
		n = UF_STAT_MAX;	/* (the last record is shared by the rest) */
	for (int i = 0; i < n && i < max; i++)
		memcpy(&out[i], &t->slot[i], sizeof *out);
	return n;
}

static void add_all(uint64_t *to, const uint64_t *from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		to[i] += from[i];
}

void uf_stat_sum(struct uf_stat *total, const struct uf_stat *s, int n)
{
	for (int i = 0; i < n; i++) {
		const struct uf_stat *r = &s[i];
		total->features |= r->features;
		total->registered += r->registered;
		total->messages += r->messages;
		add_all(total->events, r->events, UF_STAT_EVENTS);
		total->faults_write += r->faults_write;
		total->faults_wp += r->faults_wp;
		total->faults_minor += r->faults_minor;
		add_all(total->ioctls, r->ioctls, UF_STAT_IOCTLS);
		add_all(total->bytes, r->bytes, UF_STAT_IOCTLS);
		add_all(total->pages, r->pages, UF_STAT_IOCTLS);
		total->eexist += r->eexist;
		total->errors += r->errors;
		total->resolved += r->resolved;
		total->latency_from_fault += r->latency_from_fault;
		total->untracked += r->untracked;
		total->latency_sum_ns += r->latency_sum_ns;
		if (r->latency_max_ns > total->latency_max_ns)
			total->latency_max_ns = r->latency_max_ns;
		add_all(total->latency, r->latency, UF_STAT_BUCKETS);
	}
}

uint64_t uf_stat_bucket_ns(int bucket)
{
	unsigned e, sub;

	if (bucket <= 0)
		return 0;
	if (bucket < 16)
		return (uint64_t)bucket;
	if (bucket > UF_STAT_BUCKETS)
		bucket = UF_STAT_BUCKETS;
	e = (unsigned)(bucket - 16) / 8 + 4;
	sub = (unsigned)(bucket - 16) % 8;
	return (uint64_t)(8 + sub) << (e - 3);
}

uint64_t uf_stat_percentile(const struct uf_stat *s, double p)
{
	uint64_t n = 0, want, seen = 0;

	for (int b = 0; b < UF_STAT_BUCKETS; b++)
		n += s->latency[b];
	if (!n || !(p > 0))
		return 0;
	if (p > 100)
		p = 100;
	/* The sample of rank ceil(p% of n), counted from 1. */
	want = (uint64_t)((double)n * p / 100.0);
	if ((double)want < (double)n * p / 100.0)
		want++;
	if (want < 1)
		want = 1;
	for (int b = 0; b < UF_STAT_BUCKETS; b++) {
		seen += s->latency[b];
		if (seen >= want) {
			uint64_t top = b + 1 < UF_STAT_BUCKETS ? uf_stat_bucket_ns(b + 1) - 1 : s->latency_max_ns;
			return top < s->latency_max_ns ? top : s->latency_max_ns;
		}
	}
	return s->latency_max_ns;
}
