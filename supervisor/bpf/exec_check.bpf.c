// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
//
// The in-kernel exec check of session-wrapper (docs/ARCHITECTURE.md, "verification").
//
// Before the supervisor lets an exec of a supervised task go on (its seccomp notification
// answered CONTINUE), it writes into `expects`, under the task's id, what it authorized: the
// image (mount id and inode of the file that must end up executing, after any #! chain) and
// the exact bytes of the new argument and environment strings, and the user namespace the
// task must be in (the session's, which its seccomp filter does not let it leave), with state
// PENDING. When the
// exec has loaded (sched_process_exec: the new image is mapped, its stack written, not one
// instruction of it has run), `on_exec` compares what the kernel really loaded with that,
// sends SIGKILL when it differs (the task dies before it runs), and writes the verdict into
// the entry (state DONE). A task that exits with a PENDING entry (the exec failed and it gave
// up, or another thread's exec ended it) has it marked GONE by `on_exit`. The supervisor
// reads the entries of its execs (once it has answered a notification, and on a timer while
// some are pending) and removes them; no wake-up per exec, and no map of maps (whose every update
// waits for an RCU grace period, milliseconds at each session's start and end).
//
// A task without a PENDING entry is not checked: a supervised task cannot reach the kernel's
// exec without its supervisor's answer, and the supervisor writes the entry before it answers.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

// Only the fields used, relocated at load time against the running kernel's BTF (CO-RE).
struct inode { unsigned long i_ino; } __attribute__((preserve_access_index));
struct vfsmount { int mnt_flags; } __attribute__((preserve_access_index));
struct path { struct vfsmount *mnt; } __attribute__((preserve_access_index));
struct file { struct path f_path; struct inode *f_inode; } __attribute__((preserve_access_index));
struct mount { struct vfsmount mnt; int mnt_id; } __attribute__((preserve_access_index));
struct mm_struct {
	unsigned long arg_start, arg_end, env_start, env_end;
} __attribute__((preserve_access_index));
struct ns_common { unsigned int inum; } __attribute__((preserve_access_index));
struct user_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
struct cred { struct user_namespace *user_ns; } __attribute__((preserve_access_index));
struct tty_driver { int major; int minor_start; } __attribute__((preserve_access_index));
struct tty_struct { struct tty_driver *driver; int index; } __attribute__((preserve_access_index));
struct signal_struct { struct tty_struct *tty; } __attribute__((preserve_access_index));
struct task_struct {
	unsigned int ptrace;
	int pid;
	struct mm_struct *mm;
	const struct cred *real_cred;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));
struct linux_binprm { struct file *file; } __attribute__((preserve_access_index));

#define BLOCK_MAX 8192
#define SIGKILL 9

enum state { PENDING = 0, DONE = 1, GONE = 2 };
enum verdict { SAME = 0, OTHER_IMAGE = 1, OTHER_ARGS = 2, UNREADABLE = 3, TRACED = 5, OTHER_USERNS = 6 };

// What the supervisor authorized for one exec, and what was found (keep in step with
// supervisor/src/sys/bpf.rs).
struct expect {
	__u64 notif;    // the notification id, for the supervisor's table
	__u64 mnt_id;   // the image's mount id
	__u64 ino;      // and inode
	__u32 len;      // bytes used in block: argv strings then environment strings, NUL-ended
	__u32 kill;     // kill on a difference (enforce mode); otherwise only report it
	__u32 untraced; // a task traced at its exec is a difference (the `traced` guard denies)
	__u32 state;    // PENDING, then DONE or GONE (written last)
	// What was found:
	__u32 verdict;
	__u32 pid;      // the process id after the exec
	__u32 userns;   // the user namespace's inode number the task must be in (0: any)
	__u32 tty;      // the task's controlling terminal when found, as /proc/PID/stat's tty_nr
	                // (0: none), so that the supervisor need not read it before it answers
	__u64 got_mnt_id;
	__u64 got_ino;
	__u8 block[BLOCK_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct expect);
} expects SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[2 * BLOCK_MAX]);  // twice what is read: see same_strings
} scratch SEC(".maps");

// Whether the new image's argument and environment strings are the authorized bytes.
static enum verdict same_strings(struct task_struct *p, struct expect *e)
{
	struct mm_struct *mm = p->mm;
	unsigned long start, end;
	__u32 zero = 0, i;
	__u64 len, words, rest, *got, *want = (__u64 *)e->block;
	__u8 *buf;

	if (!mm)
		return UNREADABLE;
	start = mm->arg_start;
	end = mm->env_end;
	if (end < start)
		return UNREADABLE;
	len = end - start;
	if (len != e->len || len > BLOCK_MAX)
		return OTHER_ARGS;
	buf = bpf_map_lookup_elem(&scratch, &zero);
	if (!buf)
		return UNREADABLE;
	// len <= BLOCK_MAX already, but Debian 12's kernel (6.1) loses that bound when the
	// compiler spills len before the check and reloads it after (it did, and the program was
	// refused). So the compiler is made to forget the bound (it would drop the mask) and the
	// size is masked right here: provably within the buffer (2 * BLOCK_MAX), whatever the
	// compiler does.
	asm volatile("" : "+r"(len));
	len &= 2 * BLOCK_MAX - 1;
	if (bpf_probe_read_user(buf, len, (void *)start))
		return UNREADABLE;
	got = (__u64 *)buf;
	words = len / 8;
	for (i = 0; i < BLOCK_MAX / 8; i++) {
		if (i >= words)
			break;
		if (got[i] != want[i])
			return OTHER_ARGS;
	}
	rest = len % 8;
	if (rest) {
		// len <= BLOCK_MAX with a partial word: words < BLOCK_MAX / 8 (masked for the verifier).
		__u32 w = words & (BLOCK_MAX / 8 - 1);
		__u64 mask = (1ULL << (rest * 8)) - 1;

		if ((got[w] & mask) != (want[w] & mask))
			return OTHER_ARGS;
	}
	return SAME;
}

// The controlling terminal of `p` in /proc/PID/stat's encoding (fs/proc/array.c: the
// device number of tty_devnum(), new_encode_dev()), 0 for none.
static __always_inline __u32 tty_nr(struct task_struct *p)
{
	struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
	__u32 major, minor;

	if (!tty)
		return 0;
	major = BPF_CORE_READ(tty, driver, major);
	minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
	// The kernel adds the index to the whole dev_t (12 bits of major over 20 of minor).
	major += minor >> 20;
	minor &= 0xfffff;
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	__u32 key = old_pid, verdict;
	struct expect *e = bpf_map_lookup_elem(&expects, &key);
	struct vfsmount *mnt;
	struct file *f;

	if (!e || e->state != PENDING)
		return 0;
	e->pid = p->pid;
	f = bprm->file;
	e->got_ino = BPF_CORE_READ(f, f_inode, i_ino);
	mnt = BPF_CORE_READ(f, f_path.mnt);
	e->got_mnt_id = BPF_CORE_READ((struct mount *)((void *)mnt - bpf_core_field_offset(struct mount, mnt)), mnt_id);
	if (e->got_ino != e->ino || e->got_mnt_id != e->mnt_id)
		verdict = OTHER_IMAGE;
	else if (e->userns && BPF_CORE_READ(p, real_cred, user_ns, ns.inum) != e->userns)
		verdict = OTHER_USERNS;
	else if (e->untraced && p->ptrace)
		verdict = TRACED;
	else
		verdict = same_strings(p, e);
	if (verdict != SAME && e->kill)
		bpf_send_signal(SIGKILL);
	e->verdict = verdict;
	e->tty = tty_nr(p);
	__sync_lock_test_and_set(&e->state, DONE);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	__u32 key = p->pid;
	struct expect *e = bpf_map_lookup_elem(&expects, &key);

	if (e && e->state == PENDING) {
		e->tty = tty_nr(p);
		__sync_lock_test_and_set(&e->state, GONE);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
