/* cgroup v2: where it is mounted (maybe a hybrid path) and what a directory is. */
#ifndef SHUNT_LIB_CGROUP_H
#define SHUNT_LIB_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Finds the cgroup2 mount point in /proc/mounts (e.g. /sys/fs/cgroup or the hybrid
 * /sys/fs/cgroup/unified). -ENOENT if cgroup2 is not mounted. */
int cgroup2_mount_find(char *buf, size_t len);
/* 0 if path is a directory on a cgroup2 filesystem; -ENOTDIR/-EMEDIUMTYPE/-errno otherwise. */
int cgroup2_check_dir(const char *path);
/* Reads up to max pids from PATH/cgroup.procs. Returns the count or -errno. */
int cgroup_read_procs(const char *path, pid_t *pids, int max);
/* The cgroup2 path of pid relative to the cgroup2 mount ("/kubepods/pod1/c"), from
 * /proc/PID/cgroup. */
int cgroup_path_of_pid(pid_t pid, char *buf, size_t len);
/* The cgroup id (inode of the directory), as bpf_get_current_cgroup_id reports it. */
int cgroup_id_of(const char *path, unsigned long long *id);

#endif
