/* SPDX-License-Identifier: MIT */
/*
 * Non-cooperative events (UFFD-SPEC section 12): which uffds an operation
 * on the program's memory tells, and with what message.  vmops.c calls
 * these around the operation:
 *
 *   ev_collect_locked()   before it (the area lock held): the uffds to
 *                                tell, each with its `changing` raised, so
 *                                that COPY and ZEROPAGE give EAGAIN from
 *                                the moment the operation is decided
 *   ev_send()             each message, waiting until it is read
 *                                (the area lock not held: the reader may need it)
 *   ev_done()             lowers `changing` again
 */
#include <stdlib.h>
#include <string.h>
#include "emu/area.h"
#include "emu/process.h"

static int has_feature(uint32_t id, uint64_t feature)
{
	struct ctx *c = ctx_by_id(id);

	return c && atomic_load(&c->state) == CTX_RUNNING && (atomic_load(&c->features) & feature);
}

static int by_start(const void *x, const void *y)
{
	const struct ev *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

struct collect {
	enum ev_kind kind;
	uint64_t feature;
	uintptr_t start, end;
	struct ev *ev;
	int n, max;
};

static void collect_one(void *arg, uint32_t id, uintptr_t s, uintptr_t e)
{
	struct collect *k = arg;

	if (k->n >= k->max || !has_feature(id, k->feature))
		return;
	if (k->kind == EV_UNMAP) {
		for (int i = 0; i < k->n; i++)
			if (k->ev[i].ctx == id)
				return;
		s = k->start;
		e = k->end;
	}
	k->ev[k->n].ctx = id;
	k->ev[k->n].start = s;
	k->ev[k->n].end = e;
	k->n++;
}

/*
 * The events an operation on [start, end) raises, into ev[] (at most max).
 *   EV_UNMAP   one per uffd that owns a registered piece of the range,
 *              with the whole range (not clipped), as the kernel.
 *   EV_REMOVE  one per run of registered pieces of one uffd, clipped to
 *              the range (the kernel's one per mapping, its mappings being
 *              merged where ours are contiguous).
 * Each uffd named gets its `changing` raised.  Returns the count.
 */
int ev_collect_locked(enum ev_kind kind, uintptr_t start, uintptr_t end, struct ev *ev, int max)
{
	struct collect k = { kind, kind == EV_UNMAP ? UFFD_FEATURE_EVENT_UNMAP : UFFD_FEATURE_EVENT_REMOVE,
			     start, end, ev, 0, max };
	int n;

	area_each_owned_locked(start, end, collect_one, &k);
	n = k.n;
	if (kind == EV_REMOVE && n > 1) {
		int m = 0;
		qsort(ev, (size_t)n, sizeof *ev, by_start);
		for (int i = 1; i < n; i++) {
			if (ev[i].ctx == ev[m].ctx && ev[i].start == ev[m].end)
				ev[m].end = ev[i].end;
			else
				ev[++m] = ev[i];
		}
		n = m + 1;
	}
	for (int i = 0; i < n; i++)
		atomic_fetch_add(&ctx_by_id(ev[i].ctx)->changing, 1);
	return n;
}

/* Send one event and wait until it is read (or its uffd released). */
int ev_send(enum ev_kind kind, const struct ev *e, uintptr_t to)
{
	struct ctx *c = ctx_by_id(e->ctx);
	struct uffd_msg m;

	if (!c)
		return 0;
	memset(&m, 0, sizeof m);
	switch (kind) {
	case EV_REMAP:
		m.event = UFFD_EVENT_REMAP;
		m.arg.remap.from = e->start;
		m.arg.remap.to = to;
		m.arg.remap.len = e->end - e->start;
		break;
	case EV_REMOVE:
		m.event = UFFD_EVENT_REMOVE;
		m.arg.remove.start = e->start;
		m.arg.remove.end = e->end;
		break;
	default:
		m.event = UFFD_EVENT_UNMAP;
		m.arg.remove.start = e->start;
		m.arg.remove.end = e->end;
		break;
	}
	return ctx_event_raise(c, &m);
}

void ev_done(const struct ev *ev, int n)
{
	for (int i = 0; i < n; i++) {
		struct ctx *c = ctx_by_id(ev[i].ctx);
		if (c)
			atomic_fetch_sub(&c->changing, 1);
	}
}
