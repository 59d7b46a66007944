/* What a host waits for at a session's open, and at its close, apart: one PAM transaction as a
 * host makes one, each step timed alone. pam_start, then pam_acct_mgmt, which loads every
 * module of the stack (a login host has run its auth and account stacks before it opens the
 * session), then pam_open_session; then the session's first program, at once (/bin/true,
 * forked and waited for: su and sudo exec theirs right after the open, and it waits for
 * whatever the supervisor still does after "ready"); then pam_close_session. pamtester
 * (bench/session_open.py) times all of it but the program, the process and its loading
 * included, the open and the close together.
 *
 *   pam_open SERVICE USER    prints "OPEN_US FIRST_US CLOSE_US" (FIRST_US: from the open's
 *                            start to the first program's end); exits 1 when a step fails
 *
 * Build: cc -O2 -o pam_open bench/pam_open.c -lpam */
#include <security/pam_appl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* No conversation: the bench's stacks ask nothing. */
static int refuse(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)n, (void)msg, (void)resp, (void)data;
    return PAM_CONV_ERR;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* Says which step of the transaction on SERVICE failed, and how; the exit status. */
static int failed(pam_handle_t *h, const char *step, const char *service, int r) {
    fprintf(stderr, "%s %s: %s\n", step, service, h ? pam_strerror(h, r) : "failed");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pam_open SERVICE USER\n");
        return 2;
    }
    struct pam_conv conv = {refuse, NULL};
    pam_handle_t *h;
    int r = pam_start(argv[1], argv[2], &conv, &h);
    if (r != PAM_SUCCESS) return failed(NULL, "pam_start", argv[1], r);
    if ((r = pam_acct_mgmt(h, 0)) != PAM_SUCCESS) return failed(h, "pam_acct_mgmt", argv[1], r);
    double t0 = now_us();
    r = pam_open_session(h, 0);
    double t1 = now_us();
    if (r != PAM_SUCCESS) return failed(h, "pam_open_session", argv[1], r);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st = -1;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "the session's first program (/bin/true) failed: status %d\n", st);
        return 1;
    }
    double t2 = now_us();
    r = pam_close_session(h, 0);
    double t3 = now_us();
    if (r != PAM_SUCCESS) return failed(h, "pam_close_session", argv[1], r);
    pam_end(h, PAM_SUCCESS);
    printf("%.0f %.0f %.0f\n", t1 - t0, t2 - t0, t3 - t2);
    return 0;
}
