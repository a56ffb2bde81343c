/* Network-namespace helpers built on setns(2) for the calling thread only. */
#include "lib/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

int netns_open_pid(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int netns_ino_of_fd(int fd, __u64 *ino)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	*ino = st.st_ino;
	return 0;
}

int netns_ino_of_pid(pid_t pid, __u64 *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &st))
		return -errno;
	*ino = st.st_ino;
	return 0;
}

int netns_enter(int netns_fd, struct netns_saved *saved)
{
	saved->fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (saved->fd < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET)) {
		int err = -errno;

		close(saved->fd);
		saved->fd = -1;
		return err;
	}
	return 0;
}

void netns_leave(struct netns_saved *saved)
{
	if (saved->fd < 0)
		return;
	if (setns(saved->fd, CLONE_NEWNET)) {
		pr_err("cannot return to the original network namespace: %m");
		abort();
	}
	close(saved->fd);
	saved->fd = -1;
}

int netns_cookie_current(__u64 *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	close(fd);
	return err;
}

int netns_cookie_of_fd(int netns_fd, __u64 *cookie)
{
	struct netns_saved saved;
	int err;

	err = netns_enter(netns_fd, &saved);
	if (err)
		return err;
	err = netns_cookie_current(cookie);
	netns_leave(&saved);
	return err;
}

int netns_socket(int netns_fd, int domain, int type, int protocol)
{
	struct netns_saved saved;
	int fd, err;

	err = netns_enter(netns_fd, &saved);
	if (err)
		return err;
	fd = socket(domain, type, protocol);
	err = fd < 0 ? -errno : fd;
	netns_leave(&saved);
	return err;
}

int netns_socket_home(int home_fd, int netns_fd, int domain, int type, int protocol)
{
	int fd, err;

	if (setns(netns_fd, CLONE_NEWNET))
		return -errno;
	fd = socket(domain, type, protocol);
	err = fd < 0 ? -errno : fd;
	if (setns(home_fd, CLONE_NEWNET)) {
		pr_err("cannot return to the original network namespace: %m");
		abort();
	}
	return err;
}
