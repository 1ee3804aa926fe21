/* SPDX-License-Identifier: MIT */
/*
 * security: nothing the library creates widens access (README, threat model).
 *
 *  1. Every descriptor the library makes for a uffd and its ranges is
 *     close-on-exec, and is a pipe, a memfd, an epoll instance, the
 *     watcher's eventfd, or the uffd's listening socket for other processes
 *     (an abstract unix socket; these two emulation only): no file with a
 *     name.  No file appears in /dev/shm
 *     or /tmp.
 *  2. Another user cannot open those descriptors through /proc (the kernel's
 *     ptrace check, the same as for the process's memory), and a process
 *     that connects to the listening socket without handing over the uffd
 *     itself gets nothing: the connection is closed, no byte is sent.
 *  3. A uffd writes only into registered ranges of its own process: COPY
 *     and ZEROPAGE into unregistered memory, or across the end of a range,
 *     fail with ENOENT and change nothing.  Like the kernel (which checks
 *     that the range is registered, not with which uffd), a uffd may fill a
 *     range that another uffd of the same process registered.
 */
#include "t.h"
#include <dirent.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define PAGES 16

/* Bitmap of the descriptors open now. */
static void fds_open(unsigned char *set, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(set, 0, (size_t)max);
	T_REQUIRE(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) < max && atoi(e->d_name) != dirfd(d))
			set[atoi(e->d_name)] = 1;
	closedir(d);
}

/* Entries of dir whose name mentions us (other programs may come and go). */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strstr(e->d_name, "userfault") || strstr(e->d_name, "uffd"))
			n++;
	closedir(d);
	return n;
}

static int g_new[64], g_nnew;
static struct sockaddr_un g_listen;	/* the uffd's listening socket */
static socklen_t g_listen_len;

/* fd is a listening unix socket with an abstract name of ours? */
static int our_listener(int fd)
{
	int on = 0, type = 0;
	socklen_t l = sizeof on, tl = sizeof type;
	struct sockaddr_un a;
	socklen_t al = sizeof a;

	memset(&a, 0, sizeof a);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) || !on ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_SEQPACKET ||
	    getsockname(fd, (struct sockaddr *)&a, &al) || a.sun_family != AF_UNIX ||
	    a.sun_path[0] != 0 || strncmp(a.sun_path + 1, "userfault-uffd-", 15) != 0)
		return 0;
	g_listen = a;
	g_listen_len = al;
	return 1;
}

static void descriptors(int *uffd, char **reg)
{
	unsigned char before[1024], after[1024];
	int shm0 = count_entries("/dev/shm"), tmp0 = count_entries("/tmp");

	fds_open(before, 1024);
	*uffd = t_uffd(0);			/* O_CLOEXEC */
	*reg = t_map_reg(*uffd, PAGES);
	CHECK_EQ(t_copy_byte(*uffd, *reg, 0x21, 1, 0), 0);
	fds_open(after, 1024);
	for (int fd = 0; fd < 1024; fd++) {
		char path[64], link[256];
		ssize_t n;
		int fl;

		if (!after[fd] || before[fd])
			continue;
		if (g_nnew < 64)
			g_new[g_nnew++] = fd;
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof link - 1);
		T_REQUIRE(n > 0);
		link[n] = 0;
		fl = fcntl(fd, F_GETFD);
		if (!(fl & FD_CLOEXEC))
			fprintf(stderr, "descriptor %d (%s) is not close-on-exec\n", fd, link);
		CHECK(fl & FD_CLOEXEC);
		if (strncmp(link, "pipe:", 5) != 0 && strncmp(link, "/memfd:", 7) != 0 &&
		    strcmp(link, "anon_inode:[eventpoll]") != 0 &&
		    !(strcmp(link, "anon_inode:[eventfd]") == 0 && t_emulated()) &&
		    strcmp(link, "anon_inode:[userfaultfd]") != 0 &&
		    !(strncmp(link, "socket:", 7) == 0 && t_emulated() && our_listener(fd))) {
			fprintf(stderr, "descriptor %d is %s\n", fd, link);
			CHECK(0);
		}
	}
	CHECK(g_nnew >= 1);
	CHECK_EQ(count_entries("/dev/shm"), shm0);
	CHECK_EQ(count_entries("/tmp"), tmp0);
}

static void other_user(void)
{
	pid_t me = getpid(), pid;
	int st;

	if (geteuid() != 0) {
		fprintf(stderr, "not root: the other-user part is not run\n");
		return;
	}
	pid = fork();
	T_REQUIRE(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(40);
		for (int i = 0; i < g_nnew; i++) {
			char path[64];
			int fd;
			snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)me, g_new[i]);
			fd = open(path, O_RDONLY | O_NONBLOCK);
			if (fd >= 0 || (errno != EACCES && errno != EPERM)) {
				fprintf(stderr, "user nobody: open %s: %s\n", path, fd >= 0 ? "allowed" : strerror(errno));
				bad++;
			}
		}
		if (g_listen_len) {
			/* Connect without the proof: closed, nothing sent. */
			int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
			char junk[128], in[256];
			ssize_t n;
			struct timeval tv = { 5, 0 };
			memset(junk, 1, sizeof junk);
			setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			if (s < 0 || connect(s, (struct sockaddr *)&g_listen, g_listen_len) < 0) {
				fprintf(stderr, "user nobody: connect: %s\n", strerror(errno));
				bad++;
			} else {
				if (send(s, junk, sizeof junk, MSG_NOSIGNAL) < 0)
					(void)0;	/* closed already: fine */
				n = recv(s, in, sizeof in, 0);
				if (n != 0) {
					fprintf(stderr, "user nobody: got %zd bytes (%s)\n", n,
						n < 0 ? strerror(errno) : "data");
					bad++;
				}
			}
		}
		_exit(bad ? 41 : 0);
	}
	T_REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	if (WIFEXITED(st))
		CHECK_EQ(WEXITSTATUS(st), 0);
}

static int all(const char *p, size_t n, int byte)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (char)byte)
			return 0;
	return 1;
}

static void writes_stay_inside(int a, char *ra)
{
	int b = t_uffd(0);
	char *rb = t_map_reg(b, PAGES);
	char *plain = t_map(PAGES);
	char src[4 * 4096 * 4];
	int64_t out;

	memset(src, 0x77, sizeof src);
	memset(plain, 0x10, PAGES * (size_t)t_ps);
	T_REQUIRE((size_t)t_ps * 4 <= sizeof src);

	/* Into unregistered memory. */
	errno = 0;
	CHECK_EQ(t_copy(a, plain, src, t_ps, 0, &out), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(out, -ENOENT);
	/* Into the other uffd's range (same process): allowed, as on the
	 * kernel. */
	CHECK_EQ(t_copy(a, rb, src, t_ps, 0, &out), 0);
	CHECK_EQ(out, t_ps);
	CHECK_EQ(t_zeropage(a, rb + t_ps, t_ps, 0, &out), 0);
	/* Across the end of a's own range, into plain memory after it. */
	{
		char *tail = ra + (PAGES - 1) * (size_t)t_ps;
		errno = 0;
		CHECK_EQ(t_copy(a, tail, src, 2 * t_ps, 0, &out), -1);
		CHECK_EQ(errno, ENOENT);
	}
	/* Nothing changed outside: the plain memory, and a's last page still
	 * missing (a installs it now; a fault would hang the test). */
	CHECK(all(plain, PAGES * (size_t)t_ps, 0x10));
	CHECK_EQ(t_copy_byte(a, ra + (PAGES - 1) * (size_t)t_ps, 0x44, 1, 0), 0);
	CHECK(all(ra + (PAGES - 1) * (size_t)t_ps, t_ps, 0x44));
	CHECK(all(rb, t_ps, 0x77));
	CHECK(all(rb + t_ps, t_ps, 0));
	errno = 0;
	CHECK_EQ(t_copy_byte(b, rb, 0x33, 1, 0), -1);	/* present */
	CHECK_EQ(errno, EEXIST);
	t_unmap_reg(b, rb, PAGES);
	uf_close(b);
	munmap(plain, PAGES * (size_t)t_ps);
}

int main(void)
{
	int fd;
	char *reg;

	t_start(60);
	descriptors(&fd, &reg);
	other_user();
	writes_stay_inside(fd, reg);
	t_unmap_reg(fd, reg, PAGES);
	uf_close(fd);
	return t_done();
}
