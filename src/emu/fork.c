/* SPDX-License-Identifier: MIT */
/*
 * fork(): an area is a shared mapping, but the memory it stands for is
 * private.  Before the fork the parent freezes its areas (no writes until
 * the child has its copy); the child replaces each area by private memory
 * with the same bytes and forgets the parent's tables; the parent waits for
 * that, then thaws.  A failed fork just thaws.
 */
#include <fcntl.h>
#include <unistd.h>
#include "emu/emu.h"


static int g_done[2] = { -1, -1 };	/* child -> parent: EOF when copied */

static void prepare(void)
{
	pthread_mutex_lock(&uf_lock);
	uf_areas_freeze();
	if (pipe2(g_done, O_CLOEXEC) < 0)
		g_done[0] = g_done[1] = -1;
}

static void parent(void)
{
	char b;

	if (g_done[1] >= 0)
		close(g_done[1]);
	if (g_done[0] >= 0) {
		while (read(g_done[0], &b, 1) < 0 && errno == EINTR)
			;
		close(g_done[0]);
	}
	g_done[0] = g_done[1] = -1;
	uf_areas_thaw();
	pthread_mutex_unlock(&uf_lock);
}

static void child(void)
{
	uf_areas_privatize();
	uf_install_resume();
	uf_waiters_reset_after_fork();
	/* The inherited uffds still belong to the parent. */
	for (int i = 0; i < UF_MAX_CTX; i++)
		if (atomic_load(&uf_ctxs[i].state) != CTX_FREE)
			atomic_store(&uf_ctxs[i].state, CTX_ORPHAN);
	uf_watch_reset_after_fork();
	if (g_done[0] >= 0)
		close(g_done[0]);
	if (g_done[1] >= 0)
		close(g_done[1]);
	g_done[0] = g_done[1] = -1;
	pthread_mutex_init(&uf_lock, NULL);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void once(void)
{
	pthread_atfork(prepare, parent, child);
}

void uf_fork_init(void)
{
	pthread_once(&g_once, once);
}
