/* Network namespaces: open a process's netns, run a step inside it, read its cookie. */
#ifndef SHUNT_LIB_NETNS_H
#define SHUNT_LIB_NETNS_H

#include <linux/types.h>
#include <sys/types.h>

/* Opens /proc/PID/ns/net (O_CLOEXEC). Returns the fd or -errno. */
int netns_open_pid(pid_t pid);
/* Inode of a netns fd, or of /proc/PID/ns/net: identifies the netns cheaply. */
int netns_ino_of_fd(int fd, __u64 *ino);
int netns_ino_of_pid(pid_t pid, __u64 *ino);

/* Switches the calling thread into netns_fd, remembering where it was. Only the thread
 * moves; other threads of the process are untouched. */
struct netns_saved {
	int fd;
};
int netns_enter(int netns_fd, struct netns_saved *saved);
/* Returns the thread to where netns_enter found it. Failure here is fatal for the thread's
 * correctness, so it aborts rather than continue in the wrong namespace. */
void netns_leave(struct netns_saved *saved);

/* Cookie (SO_NETNS_COOKIE) of the netns the calling thread is in. */
int netns_cookie_current(__u64 *cookie);
/* Cookie of netns_fd (enters and leaves it). */
int netns_cookie_of_fd(int netns_fd, __u64 *cookie);

/* socket(2) inside netns_fd: the socket stays bound to that netns for its whole life. */
int netns_socket(int netns_fd, int domain, int type, int protocol);
/* The same on a hot path: the caller keeps an fd of the thread's own netns (home_fd), which
 * saves opening /proc/thread-self/ns/net per socket. */
int netns_socket_home(int home_fd, int netns_fd, int domain, int type, int protocol);

#endif
