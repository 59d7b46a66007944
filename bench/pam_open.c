/* What a host waits for at a session's open, and at its close, apart: one PAM transaction as a
 * host makes one, each step timed alone. pam_start, then pam_acct_mgmt, which loads every
 * module of the stack (a login host has run its auth and account stacks before it opens the
 * session), then pam_open_session and pam_close_session. pamtester (bench/session_open.py)
 * times all of it, the process and its loading included, the open and the close together.
 *
 *   pam_open SERVICE USER    prints "OPEN_US CLOSE_US"; exits 1 when a step fails
 *
 * Build: cc -O2 -o pam_open bench/pam_open.c -lpam */
#include <security/pam_appl.h>
#include <stdio.h>
#include <time.h>

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

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: pam_open SERVICE USER\n");
        return 2;
    }
    struct pam_conv conv = {refuse, NULL};
    pam_handle_t *h;
    int r = pam_start(argv[1], argv[2], &conv, &h);
    if (r != PAM_SUCCESS) {
        fprintf(stderr, "pam_start %s: %d\n", argv[1], r);
        return 1;
    }
    if ((r = pam_acct_mgmt(h, 0)) != PAM_SUCCESS) {
        fprintf(stderr, "pam_acct_mgmt %s: %s\n", argv[1], pam_strerror(h, r));
        return 1;
    }
    double t0 = now_us();
    r = pam_open_session(h, 0);
    double t1 = now_us();
    if (r != PAM_SUCCESS) {
        fprintf(stderr, "pam_open_session %s: %s\n", argv[1], pam_strerror(h, r));
        return 1;
    }
    r = pam_close_session(h, 0);
    double t2 = now_us();
    if (r != PAM_SUCCESS) {
        fprintf(stderr, "pam_close_session %s: %s\n", argv[1], pam_strerror(h, r));
        return 1;
    }
    pam_end(h, PAM_SUCCESS);
    printf("%.0f %.0f\n", t1 - t0, t2 - t1);
    return 0;
}
