/* The floor under the supervisor's exec cost: the kernel mechanisms it is built on, with no
 * decision, no memory reading, no logging. Used by bench/run.sh as two rows of the exec loop.
 *
 *   floor notify CMD ARGS...   every execve/execveat of CMD's tree stops at a seccomp user
 *                              notification and is answered CONTINUE at once (with the
 *                              listener's synchronous wake-up, as the supervisor sets it)
 *   floor ptrace CMD ARGS...   the same, and each exec is also stopped at PTRACE_EVENT_EXEC
 *                              as the supervisor does to check what really loaded:
 *                              PTRACE_SEIZE while the task waits, CONTINUE, PTRACE_INTERRUPT,
 *                              and detach at the stop that follows
 *
 * Build: cc -O2 -o floor bench/floor.c   (as root: installs a filter without NO_NEW_PRIVS) */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "notify") && strcmp(argv[1], "ptrace"))) {
        fprintf(stderr, "usage: floor notify|ptrace CMD ARGS...\n");
        return 2;
    }
    int trace = !strcmp(argv[1], "ptrace");
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
            memset(resp, 0, sizes.seccomp_notif_resp);
            resp->id = req->id;
            resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
            if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) && errno != ENOENT) die("notif send");
            if (seized) ptrace(PTRACE_INTERRUPT, tid, 0, 0);
        } else if (p[1].revents & (POLLHUP | POLLERR)) {
            open_listener = 0; /* no task left under the filter */
        }
    }
    int st = child_status;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
