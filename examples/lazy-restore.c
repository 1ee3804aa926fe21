/* lazy-restore: a monitor process serves a restored process's memory lazily from an image file, following it through mremap (REMAP), fork (FORK) and munmap (UNMAP). */
/*
 * SPDX-License-Identifier: MIT
 *
 * Raw kernel ABI only: userfaultfd(2), ioctl, poll, read, SCM_RIGHTS.
 *
 * The pattern of CRIU's lazy restore and of VM post-copy: the memory of a
 * restored process is not loaded up front; a monitor (another process)
 * loads each page from the image when the process first touches it.  The
 * restored process does not cooperate: it remaps its memory and forks, and
 * the monitor keeps up through the non-cooperative events.
 *
 *   restored process (child)          monitor (parent)
 *   uffd with EVENT_FORK|REMAP|UNMAP
 *   registers its 8-page heap
 *   sends the uffd over a socket  -->  polls every uffd it knows
 *   reads pages 0 and 1               PAGEFAULT: COPY the page from the image
 *   mremap()s the heap elsewhere      REMAP: the heap's address changes
 *   reads page 2 (new address)        PAGEFAULT at the new address
 *   fork()s; the grandchild reads     FORK: a new uffd for the grandchild;
 *     pages 3 and 4                     its faults are served from the image
 *   munmap()s the heap                UNMAP: nothing more to serve there
 *
 * Every line printed is in an order fixed by the protocol, so the output is
 * the same on every run (and on both back-ends).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <userfault/uapi.h>	/* our copy of <linux/userfaultfd.h> */

#define NPAGES 8

static size_t page_size;

static void die(const char *what)
{
	fprintf(stderr, "lazy-restore: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The byte at offset 0 of page i in the image. */
static char image_byte(long i)
{
	return (char)('a' + i);
}

static void send_fd(int sock, int fd)
{
	char c = 'u';
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	struct cmsghdr *cm;

	memset(&u, 0, sizeof u);
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) != 1)
		die("sendmsg");
}

static int recv_fd(int sock)
{
	char c;
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			    .msg_controllen = sizeof u.b };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		die("recvmsg");
	cm = CMSG_FIRSTHDR(&m);
	if (!cm)
		die("recvmsg: no descriptor");
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	return fd;
}

/* ---- the restored process ---- */

static void say(int sock, const char *line)
{
	/* The monitor prints for us, so that all lines are in one order. */
	size_t n = strlen(line);
	if (write(sock, line, n) != (ssize_t)n)
		die("write");
}

static void restored(int sock)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_UNMAP,
	};
	struct uffdio_register reg;
	char line[128], *heap, *moved, *where, c0, c1, c2, c3, c4;
	int uffd, status;
	pid_t pid;

	uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API");
	heap = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* A place to move to, kept mapped until then. */
	where = mmap(NULL, NPAGES * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED || where == MAP_FAILED)
		die("mmap");
	reg.range.start = (uintptr_t)heap;
	reg.range.len = NPAGES * page_size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	/* Where the heap is, then the uffd. */
	if (write(sock, &heap, sizeof heap) != (ssize_t)sizeof heap)
		die("write");
	send_fd(sock, uffd);
	close(uffd);		/* the monitor holds it now */

	/* volatile: one access after the other, in this order */
	c0 = ((volatile char *)heap)[0];
	c1 = ((volatile char *)heap)[page_size];
	snprintf(line, sizeof line, "restored: page 0 reads '%c', page 1 reads '%c'\n", c0, c1);
	say(sock, line);

	moved = mremap(heap, NPAGES * page_size, NPAGES * page_size,
		       MREMAP_MAYMOVE | MREMAP_FIXED, where);
	if (moved == MAP_FAILED)
		die("mremap");
	c1 = ((volatile char *)moved)[page_size];
	c2 = ((volatile char *)moved)[2 * page_size];
	snprintf(line, sizeof line, "restored: moved; page 1 still reads '%c', page 2 reads '%c'\n",
		 c1, c2);
	say(sock, line);

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		c2 = ((volatile char *)moved)[2 * page_size];
		c3 = ((volatile char *)moved)[3 * page_size];
		c4 = ((volatile char *)moved)[4 * page_size];
		snprintf(line, sizeof line, "forked child: page 2 reads '%c', page 3 reads '%c', page 4 reads '%c'\n",
			 c2, c3, c4);
		say(sock, line);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("the forked child failed");
	say(sock, "restored: the forked child is done\n");
	if (munmap(moved, NPAGES * page_size) < 0)
		die("munmap");
	say(sock, "restored: heap unmapped, exiting\n");
	_exit(0);
}

/* ---- the monitor ---- */

struct tracked {
	int fd;
	const char *who;
	uintptr_t base;		/* where the heap is in that process */
	int live;
};

static void serve_fault(struct tracked *t, const struct uffd_msg *m, int image)
{
	uintptr_t page = m->arg.pagefault.address & ~(uintptr_t)(page_size - 1);
	long i = (long)((page - t->base) / page_size);

	if (page < t->base || i >= NPAGES) {
		fprintf(stderr, "lazy-restore: a fault outside the heap\n");
		exit(1);
	}
	char *buf = malloc(page_size);
	struct uffdio_copy c;

	if (!buf)
		die("malloc");
	if (pread(image, buf, page_size, (off_t)i * (off_t)page_size) != (ssize_t)page_size)
		die("pread image");
	printf("monitor: %s faulted on page %ld: COPY from the image\n", t->who, i);
	fflush(stdout);
	c.dst = page;
	c.src = (uintptr_t)buf;
	c.len = page_size;
	c.mode = 0;
	if (ioctl(t->fd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
		die("UFFDIO_COPY");
	free(buf);
}

int main(void)
{
	struct tracked t[4];
	int nt = 0, sv[2], image, status, done = 0;
	char path[] = "/tmp/lazy-restore-image-XXXXXX";
	pid_t pid;
	void *heap_at;

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);

	/* The image: page i is full of the letter 'a' + i. */
	image = mkstemp(path);
	if (image < 0)
		die("mkstemp");
	unlink(path);
	for (long i = 0; i < NPAGES; i++) {
		char *pg = malloc(page_size);
		if (!pg)
			die("malloc");
		memset(pg, image_byte(i), page_size);
		if (write(image, pg, page_size) != (ssize_t)page_size)
			die("write image");
		free(pg);
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		restored(sv[1]);
	}
	close(sv[1]);

	if (read(sv[0], &heap_at, sizeof heap_at) != (ssize_t)sizeof heap_at)
		die("read the heap's address");
	t[nt].fd = recv_fd(sv[0]);
	t[nt].who = "restored";
	t[nt].live = 1;
	t[nt].base = (uintptr_t)heap_at;
	nt++;
	printf("monitor: got the restored process's uffd\n");

	while (!done) {
		struct pollfd p[5];
		int n = 0;

		for (int i = 0; i < nt; i++) {
			p[n].fd = t[i].fd;
			p[n].events = POLLIN;
			n++;
		}
		p[n].fd = sv[0];
		p[n].events = POLLIN;
		if (poll(p, (nfds_t)n + 1, -1) < 0 && errno != EINTR)
			die("poll");
		if (p[n].revents) {
			char line[256];
			ssize_t k = read(sv[0], line, sizeof line - 1);
			if (k <= 0) {
				done = 1;
			} else {
				line[k] = 0;
				fputs(line, stdout);
			}
		}
		for (int i = 0; i < n; i++) {
			struct uffd_msg m;

			if (!p[i].revents)
				continue;
			if (read(t[i].fd, &m, sizeof m) != sizeof m) {
				if (errno == EAGAIN)
					continue;
				die("read uffd");
			}
			switch (m.event) {
			case UFFD_EVENT_PAGEFAULT:
				serve_fault(&t[i], &m, image);
				break;
			case UFFD_EVENT_REMAP:
				printf("monitor: REMAP of %llu pages: the heap moved\n",
				       (unsigned long long)(m.arg.remap.len / page_size));
				if (m.arg.remap.from == t[i].base)
					t[i].base = m.arg.remap.to;
				break;
			case UFFD_EVENT_FORK:
				printf("monitor: FORK: a new uffd for the forked child\n");
				t[nt].fd = (int)m.arg.fork.ufd;
				t[nt].who = "forked child";
				t[nt].base = t[i].base;
				t[nt].live = 1;
				nt++;
				break;
			case UFFD_EVENT_UNMAP:
				printf("monitor: UNMAP of %llu pages by the %s\n",
				       (unsigned long long)((m.arg.remove.end - m.arg.remove.start) / page_size),
				       t[i].who);
				break;
			default:
				printf("monitor: event 0x%x\n", m.event);
			}
		}
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("the restored process failed");
	for (int i = 0; i < nt; i++)
		close(t[i].fd);
	printf("monitor: done\n");
	return 0;
}
