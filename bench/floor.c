/* The floor under the supervisor's exec cost: the kernel mechanisms it is built on, and the
 * least reading and logging any supervisor of the same design must add, with no decision.
 * Used by bench/run.sh as rows of the exec loop and of the real workload.
 *
 *   floor notify CMD ARGS...   every execve/execveat of CMD's tree stops at a seccomp user
 *                              notification and is answered CONTINUE at once (with the
 *                              listener's synchronous wake-up, as the supervisor sets it)
 *   floor ptrace CMD ARGS...   the same, and each exec is also stopped at PTRACE_EVENT_EXEC
 *                              as the supervisor does to check what really loaded:
 *                              PTRACE_SEIZE while the task waits, CONTINUE, PTRACE_INTERRUPT,
 *                              and detach at the stop that follows
 *   floor read CMD ARGS...     notify, and before answering, the least any supervisor that
 *                              decides on the real file and the arguments must read: the path
 *                              and argv from the task's memory (two process_vm_readv), the file
 *                              through the task's root (openat O_PATH, fstat) and its real
 *                              path (readlink of the descriptor), then NOTIF_ID_VALID
 *   floor log CMD ARGS...      read, and one syslog datagram per exec after the answer, to the
 *                              Unix datagram socket named by FLOOR_LOG (the same receiver)
 *   floor env CMD ARGS...      log, and before answering, the least reading of the
 *                              environment that a guard on loader variables (LD_PRELOAD and
 *                              the like) needs: the envp array (one process_vm_readv) and
 *                              every page where an entry begins, each once (one more); at
 *                              most 256 entries on 64 pages, less than the least beyond
 *   floor tacacs CMD ARGS...   log, and before answering, one TACACS+ authorization exchange:
 *                              the request in the file FLOOR_TACACS_PACKET (made by
 *                              bench/tacacs_packet.py) sent on one TCP connection to
 *                              FLOOR_TACACS (IPv4 HOST:PORT), its reply read whole (blocking;
 *                              the server must agree to single-connect)
 *   floor serve LOG            the floor of a PAM session's supervisor (started by the module
 *                              below, its socket on fd 3): takes the listener, sends one
 *                              session-start-sized datagram to LOG, says ready, then answers
 *                              CONTINUE until no task is left under the filter
 *   floor guard LOG            serve, and what the supervisor's guarantees add to the open at
 *                              the least, in ours' order: reads the hello (the leader's pid);
 *                              forks, the parent a watchdog that says "supervise", waits for
 *                              the supervisor and logs its end; the supervisor begins its
 *                              confinement as ours does (no groups, no capability but ptrace,
 *                              read-search and kill, not dumpable, NO_NEW_PRIVS), takes the
 *                              listener, reads the leader's root, mount table and user
 *                              namespace while it waits, says ready, then ends the confinement
 *                              (the bounding set; a filter of its own that refuses exec, fork,
 *                              mount and the like), writes a session file under
 *                              /run/floor-sessions and logs the session's start
 *
 * Built with -DFLOOR_PAM -shared -fPIC, the same file is the floor of a PAM session module
 * (`session required pam_floor.so FLOOR LOG [guard]`): the least a module that puts the
 * session under an exec'd supervisor must do at open: a socket pair, fork and fork again (the
 * supervisor is not the host's child), exec of FLOOR serve, the filter installed in the host,
 * its listener handed over, and the supervisor's ready awaited. With `guard`, it execs FLOOR
 * guard instead, looks the user up (uid and groups, for rules by group) and sends its pid as
 * the hello, and installs the filter once the supervisor says "supervise".
 *
 * Build: cc -O2 -o floor bench/floor.c   (as root: installs a filter without NO_NEW_PRIVS)
 *        cc -O2 -shared -fPIC -DFLOOR_PAM -o pam_floor.so bench/floor.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(125);
}

static int install_filter(void) {
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execveat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    struct sock_fprog fprog = {.len = sizeof prog / sizeof prog[0], .filter = prog};
    int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (fd < 0) die("seccomp");
    return fd;
}

static void send_fd(int sock, int fd) {
    char buf[CMSG_SPACE(sizeof fd)] = {0};
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fd);
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sock, &msg, 0) != 1) die("sendmsg");
}

static int recv_fd(int sock) {
    char buf[CMSG_SPACE(sizeof(int))] = {0};
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
    if (recvmsg(sock, &msg, 0) != 1) die("recvmsg");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c) die("no fd");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

/* One stop of a seized task (or the end of one): at the exec stop, or any other, detach (a
 * signal-delivery stop passes its signal on). */
static void on_stop(pid_t tid, int st) {
    if (!WIFSTOPPED(st)) return;
    int sig = WSTOPSIG(st), event = st >> 16;
    if (event == PTRACE_EVENT_EXEC || event == PTRACE_EVENT_STOP || sig == SIGTRAP)
        ptrace(PTRACE_DETACH, tid, 0, 0);
    else
        ptrace(PTRACE_DETACH, tid, 0, (void *)(long)sig);
}

/* The least reading of one exec (mode read): its path and argv, the file its path names from
 * the task's root and that file's real path. Errors are ignored: only the cost counts. */
static void read_exec(const struct seccomp_notif *req) {
    pid_t tid = req->pid;
    int at = req->data.nr == SYS_execveat;
    char path[256] = {0}, args[8 * 16] = {0}, strings[16][64];
    struct iovec local[2] = {{path, sizeof path - 1}, {args, sizeof args}};
    struct iovec remote[2] = {{(void *)req->data.args[at], sizeof path - 1}, {(void *)req->data.args[at + 1], sizeof args}};
    process_vm_readv(tid, local, 2, remote, 2, 0);
    struct iovec ls[16], rs[16];
    int n = 0;
    for (; n < 16 && ((unsigned long *)args)[n]; n++) {
        ls[n] = (struct iovec){strings[n], sizeof strings[n]};
        rs[n] = (struct iovec){(void *)((unsigned long *)args)[n], sizeof strings[n]};
    }
    if (n) process_vm_readv(tid, ls, n, rs, n, 0);
    char through[512], real[512];
    snprintf(through, sizeof through, "/proc/%d/%s/%s", (int)tid, path[0] == '/' ? "root" : "cwd", path);
    int fd = open(through, O_PATH | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    fstat(fd, &st);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (readlink(self, real, sizeof real) < 0) real[0] = 0;
    close(fd);
}

/* The least reading of the environment (mode env): the envp array, then every page where an
 * entry begins, each once, in one call (a shell keeps each exported variable in its own
 * allocation: the entries lie on many pages, several to a page). Enough for each entry's name
 * but for one that crosses into the next page. Errors are ignored: only the cost counts. */
static void read_env(const struct seccomp_notif *req) {
    int at = req->data.nr == SYS_execveat;
    static unsigned long envp[256], bases[64];
    static char pages[64][4096];
    struct iovec l = {envp, sizeof envp}, r = {(void *)req->data.args[at + 2], sizeof envp};
    ssize_t got = process_vm_readv(req->pid, &l, 1, &r, 1, 0);
    static struct iovec ls[64], rs[64];
    int n = 0;
    for (int i = 0; got > 0 && i < 256 && (ssize_t)(i * sizeof envp[0]) < got && envp[i] && n < 64; i++) {
        unsigned long base = envp[i] & ~4095UL;
        int seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = bases[j] == base;
        if (seen) continue;
        bases[n] = base;
        ls[n] = (struct iovec){pages[n], 4096};
        rs[n] = (struct iovec){(void *)base, 4096};
        n++;
    }
    if (n) process_vm_readv(req->pid, ls, n, rs, n, 0);
}

/* One datagram like a decision line (mode log), to FLOOR_LOG; dropped when it would block. */
static void log_exec(int sock, const struct seccomp_notif *req) {
    char line[400];
    int n = snprintf(line, sizeof line,
                     "<86>Dec  3 12:49:03 floor[%d]: session=0123456789ab decision=allow rule=default mode=enforce "
                     "user=root uid=0 target=root pid=%d ppid=1 tty=- cwd=\"/tmp\" path=\"/bin/true\" "
                     "exe=\"/usr/bin/true\" argc=1 argv=\"/bin/true\" latency_us=1 result=exec",
                     (int)getpid(), (int)req->pid);
    send(sock, line, n, MSG_DONTWAIT);
}

/* The connection of mode tacacs, and its request. */
static int tacacs_fd = -1;
static char tacacs_packet[4096];
static ssize_t tacacs_len;

static void tacacs_connect(void) {
    const char *to = getenv("FLOOR_TACACS"), *file = getenv("FLOOR_TACACS_PACKET");
    if (!to || !file || !strchr(to, ':')) {
        fprintf(stderr, "floor tacacs: set FLOOR_TACACS=HOST:PORT and FLOOR_TACACS_PACKET\n");
        exit(2);
    }
    int f = open(file, O_RDONLY | O_CLOEXEC);
    if (f < 0 || (tacacs_len = read(f, tacacs_packet, sizeof tacacs_packet)) < 12) die("FLOOR_TACACS_PACKET");
    close(f);
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(strchr(to, ':') - to), to);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(strchr(to, ':') + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("FLOOR_TACACS host");
    int one = 1;
    tacacs_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tacacs_fd < 0 || connect(tacacs_fd, (struct sockaddr *)&a, sizeof a)) die("FLOOR_TACACS");
    setsockopt(tacacs_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* One authorization exchange (mode tacacs): the request, then the reply's header and body. */
static void tacacs_exchange(void) {
    unsigned char reply[12 + 4096];
    if (send(tacacs_fd, tacacs_packet, tacacs_len, MSG_NOSIGNAL) != tacacs_len) die("tacacs send");
    if (recv(tacacs_fd, reply, 12, MSG_WAITALL) != 12) die("tacacs reply");
    size_t len = (size_t)reply[8] << 24 | reply[9] << 16 | reply[10] << 8 | reply[11];
    if (len > 4096 || recv(tacacs_fd, reply + 12, len, MSG_WAITALL) != (ssize_t)len) die("tacacs reply body");
}

static int log_socket(void) {
    const char *path = getenv("FLOOR_LOG");
    if (!path) {
        fprintf(stderr, "floor log: set FLOOR_LOG to the receiver's socket\n");
        exit(2);
    }
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) die("FLOOR_LOG");
    return s;
}

#ifdef FLOOR_PAM
/* PAM's entry points, declared here so that the floor needs no PAM headers. */
int pam_sm_open_session(void *pamh, int flags, int argc, const char **argv);
int pam_get_item(const void *pamh, int item_type, const void **item);
int pam_sm_close_session(void *pamh, int flags, int argc, const char **argv);

/* Mode guard's side of the module before the filter: the user's uid and groups (for rules by
 * group), while the supervisor loads; then the hello on `sock`, and its answer. */
static int hello(void *pamh, int sock) {
    const char *user = NULL;
    if (pam_get_item(pamh, 2 /* PAM_USER */, (const void **)&user) != 0 || !user) return 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) return 0;
    gid_t groups[256];
    int ngroups = 256;
    if (getgrouplist(user, pw->pw_gid, groups, &ngroups) < 0) return 0;
    int leader = getpid();
    char supervise = 0;
    return write(sock, &leader, sizeof leader) == sizeof leader && read(sock, &supervise, 1) == 1 && supervise == 's';
}

int pam_sm_open_session(void *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    enum { PAM_SUCCESS = 0, PAM_SESSION_ERR = 14 };
    if (argc < 2) return PAM_SESSION_ERR;
    int guard = argc >= 3 && !strcmp(argv[2], "guard");
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return PAM_SESSION_ERR;
    pid_t child = fork();
    if (child < 0) {
        close(sv[0]);
        close(sv[1]);
        return PAM_SESSION_ERR;
    }
    if (child == 0) {
        if (fork() == 0) {
            if (dup2(sv[1], 3) == 3) execl(argv[0], argv[0], guard ? "guard" : "serve", argv[1], (char *)NULL);
            _exit(127);
        }
        _exit(0);
    }
    close(sv[1]);
    waitpid(child, NULL, 0);
    if (guard && !hello(pamh, sv[0])) {
        close(sv[0]);
        return PAM_SESSION_ERR;
    }
    int l = install_filter();
    send_fd(sv[0], l);
    close(l);
    char ready = 0;
    int ok = read(sv[0], &ready, 1) == 1 && ready == 'r';
    close(sv[0]);
    return ok ? PAM_SUCCESS : PAM_SESSION_ERR;
}

int pam_sm_close_session(void *pamh, int flags, int argc, const char **argv) {
    (void)pamh, (void)flags, (void)argc, (void)argv;
    return 0;
}
#else
/* Answers CONTINUE to every notification of `listener` until no task is left under it. */
static void answer_all(int listener) {
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes)) die("notif sizes");
    struct seccomp_notif *req = calloc(1, sizes.seccomp_notif);
    struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp);
    for (;;) {
        struct pollfd p = {.fd = listener, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR) die("poll");
        if (p.revents & POLLIN) {
            memset(req, 0, sizes.seccomp_notif);
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req)) continue;
            memset(resp, 0, sizes.seccomp_notif_resp);
            resp->id = req->id;
            resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
        } else if (p.revents & (POLLHUP | POLLERR)) {
            return;
        }
    }
}

/* One datagram of `n` bytes to the receiver at LOG (dropped when it would block). */
static void log_line(const char *log, const char *line, int n) {
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, log, sizeof a.sun_path - 1);
    if (s >= 0) sendto(s, line, n, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a);
    close(s);
}

/* One session-start-sized line to LOG. */
static void log_start(const char *log) {
    char line[300];
    int n = snprintf(line, sizeof line,
                     "<86>Dec  3 12:49:03 floor[%d]: session=0123456789ab event=session-start user=root uid=0 "
                     "service=swbench-floor rhost=- tty=- leader=1 mode=enforce config=\"/etc/x.toml\"",
                     (int)getpid());
    log_line(log, line, n);
}

/* The supervisor's side of the PAM floor: the listener, one session-start line, ready, then
 * every notification answered. */
static int serve(const char *log) {
    int listener = recv_fd(3);
    if (!getenv("FLOOR_NO_SYNC")) ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0);
    log_start(log);
    if (write(3, "r", 1) != 1) return 1;
    close(3);
    answer_all(listener);
    return 0;
}

/* The supervisor's confinement, as ours does it (session/harden.rs), in two steps. Begun
 * before "ready": no supplementary groups; no capability but CAP_SYS_PTRACE,
 * CAP_DAC_READ_SEARCH and CAP_KILL (and CAP_SETPCAP, to drop the bounding set with), none
 * inheritable; not dumpable; NO_NEW_PRIVS. Ended after: every other capability out of the
 * bounding set, CAP_SETPCAP dropped, a filter of its own that refuses what the supervisor
 * never does (exec, fork, mount, modules, identity, BPF, perf, io_uring, writing other
 * processes). */
static const unsigned long KEEP = 1UL << CAP_SYS_PTRACE | 1UL << CAP_DAC_READ_SEARCH | 1UL << CAP_KILL;

static void set_caps(unsigned long caps) {
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{.effective = (__u32)caps, .permitted = (__u32)caps}};
    if (syscall(SYS_capset, &h, d)) die("capset");
}

static void begin_confinement(void) {
    if (setgroups(0, NULL)) die("setgroups");
    set_caps(KEEP | 1UL << CAP_SETPCAP);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("prctl");
}

static void end_confinement(void) {
    for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
        if (!(KEEP >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0)) die("PR_CAPBSET_DROP");
    set_caps(KEEP);
    const int refused[] = {SYS_execve, SYS_execveat, SYS_fork, SYS_vfork, SYS_mount, SYS_umount2, SYS_pivot_root,
                           SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_setuid, SYS_setgid,
                           SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setgroups, SYS_bpf,
                           SYS_perf_event_open, SYS_io_uring_setup, SYS_process_vm_writev, SYS_ptrace,
                           SYS_unshare, SYS_setns, SYS_kexec_load, SYS_reboot};
    enum { N = sizeof refused / sizeof refused[0] };
    struct sock_filter prog[N + 6];
    int k = 0;
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < N; i++)
        prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, refused[i], N - i, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[k] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    struct sock_fprog fprog = {.len = (unsigned short)(k + 1), .filter = prog};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog)) die("own filter");
}

/* The supervisor's side of the PAM floor with its guarantees (mode guard; see the top), in
 * ours' order: the watchdog tells the module to go on as soon as the fork returns; ready
 * comes once nothing can refuse the session; the confinement's end, the session file and
 * the line come after. */
static int guard(const char *log) {
    int leader;
    if (read(3, &leader, sizeof leader) != sizeof leader) return 1;
    char run[64], tmp[64];
    snprintf(run, sizeof run, "%d.session", (int)getpid());
    snprintf(tmp, sizeof tmp, ".%d.tmp", (int)getpid());
    pid_t sup = fork();
    if (sup < 0) return 1;
    if (sup > 0) {
        /* The watchdog: says "supervise", waits for the supervisor, removes its file, says
         * how it ended. */
        int said = write(3, "s", 1) == 1;
        close(3);
        int st;
        while (waitpid(sup, &st, 0) < 0 && errno == EINTR) {}
        int d = open("/run/floor-sessions", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) unlinkat(d, run, 0);
        const char line[] = "<86>Dec  3 12:49:03 floor: session=0123456789ab event=session-end";
        log_line(log, line, sizeof line - 1);
        return said ? 0 : 1;
    }
    /* While the module installs the filter: the runtime directory, the confinement begun. */
    mkdir("/run/floor-sessions", 0700);
    int rund = open("/run/floor-sessions", O_PATH | O_DIRECTORY | O_CLOEXEC);
    begin_confinement();
    int listener = recv_fd(3);
    if (!getenv("FLOOR_NO_SYNC")) ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0);
    /* The session's root, mount table and user namespace, read while the leader waits. */
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/%d", leader);
    int dir = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int root = openat(dir, "root", O_PATH | O_CLOEXEC);
    int table = openat(dir, "mountinfo", O_RDONLY | O_CLOEXEC);
    char buf[16384];
    while (read(table, buf, sizeof buf) > 0) {}
    struct stat ns;
    if (dir < 0 || root < 0 || table < 0 || fstatat(dir, "ns/user", &ns, 0)) die("the leader's /proc");
    close(dir);
    if (write(3, "r", 1) != 1) return 1;
    close(3);
    end_confinement();
    /* The session file, as `session-wrapper sessions` reads it. */
    int f = openat(rund, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    int n = snprintf(buf, sizeof buf, "id=0123456789ab\nuser=root\nservice=swbench-floor\nleader=%d\nsupervisor=%d\n", leader,
                     (int)getpid());
    if (f < 0 || write(f, buf, n) != n || close(f) || renameat(rund, tmp, rund, run)) die("session file");
    log_start(log);
    answer_all(listener);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) return serve(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "guard")) return guard(argv[2]);
    const char *modes[] = {"notify", "ptrace", "read", "log", "tacacs", "env"};
    int mode = -1;
    for (int i = 0; argc >= 3 && i < 6; i++)
        if (!strcmp(argv[1], modes[i])) mode = i;
    if (mode < 0) {
        fprintf(stderr, "usage: floor notify|ptrace|read|log|tacacs|env CMD ARGS...\n");
        return 2;
    }
    int trace = mode == 1, reads = mode >= 2, logs = mode >= 3 ? log_socket() : -1;
    if (mode == 4) tacacs_connect();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(sv[0]);
        int l = install_filter();
        send_fd(sv[1], l);
        close(l);
        close(sv[1]);
        execvp(argv[2], argv + 2);
        die("exec");
    }
    close(sv[1]);
    int listener = recv_fd(sv[0]);
    close(sv[0]);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd");
    int child_status = -1;

    /* As the supervisor does (Linux 6.6): wake the listener on the notifying task's CPU and
     * switch to it directly. FLOOR_NO_SYNC=1 leaves it out. */
    if (!getenv("FLOOR_NO_SYNC") && ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0))
        perror("SECCOMP_IOCTL_NOTIF_SET_FLAGS");

    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes)) die("notif sizes");
    struct seccomp_notif *req = calloc(1, sizes.seccomp_notif);
    struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp);
    /* Like the supervisor: notifications and stops are handled from one loop, never waited
     * for. Runs until no task is left under the filter and the child has been reaped. */
    int open_listener = 1;
    while (open_listener || child_status < 0) {
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = open_listener ? listener : -1, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            for (;;) {
                int st;
                pid_t w = waitpid(-1, &st, WNOHANG | __WALL);
                if (w <= 0) break;
                if (w == child && (WIFEXITED(st) || WIFSIGNALED(st))) child_status = st;
                else on_stop(w, st);
            }
        }
        if (p[1].revents & POLLIN) {
            memset(req, 0, sizes.seccomp_notif);
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req)) {
                if (errno == EINTR || errno == ENOENT) continue;
                die("notif recv");
            }
            pid_t tid = req->pid;
            int seized = trace && ptrace(PTRACE_SEIZE, tid, 0, (void *)(PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)) == 0;
            if (reads) {
                read_exec(req);
                if (mode == 5) read_env(req);
                if (tacacs_fd >= 0) tacacs_exchange();
                ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id);
            }
            memset(resp, 0, sizes.seccomp_notif_resp);
            resp->id = req->id;
            resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) && errno != ENOENT) die("notif send");
            if (seized) ptrace(PTRACE_INTERRUPT, tid, 0, 0);
            if (logs >= 0) log_exec(logs, req);
        } else if (p[1].revents & (POLLHUP | POLLERR)) {
            open_listener = 0; /* no task left under the filter */
        }
    }
    int st = child_status;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
#endif
